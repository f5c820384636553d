//! `POST /api/v1/activityhistory`: activities posted by writers, validated with
//! the listener's rules and queued for it, so the table keeps one write path
//! (docs/api.md, Posting activities). Answers 202: the record exists once the
//! listener has written it.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::posted::{self, Posting};
use domain::{PostedActivity, Timestamp};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::access::{AccessLog, Caller, Route};
use crate::error::{ApiError, ErrorBody};
use crate::ingest::{Ingest, MAX_BODY_BYTES, MAX_ITEMS, MAX_MESSAGE_BYTES, SendFailed};
use crate::model::{Accepted, AcceptedJson};

/// One posted activity (documentation; parsing is in `domain::posted`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct PostedActivityJson {
    /// GUID the record keeps; generated when absent. Posting the same id again
    /// records nothing new.
    id: Option<Uuid>,
    /// `create`, `update`, `delete`, `migrate` or `end`.
    r#type: String,
    /// A target type the listener records, e.g. `person`, `tenure`.
    targetType: String,
    /// GUID of the entity whose history the activity joins.
    targetId: Uuid,
    /// When it happened (ISO 8601, 1900 or later, not in the future); now when absent.
    createdAt: Option<String>,
    /// Days to keep the record, 1 to 36500; the target type's retention when absent.
    timetoLiveForRecord: Option<u32>,
    /// The entity before (required by `update` and `delete`).
    #[schema(value_type = Option<Object>)]
    oldData: Option<Value>,
    /// The entity after (required by `create`, `update`, `migrate` and `end`).
    #[schema(value_type = Option<Object>)]
    newData: Option<Value>,
    /// Who made the change.
    authorDetails: AuthorJson,
    /// The domain the activity belongs to; `ActivityHistory` when absent.
    sourceDomain: Option<String>,
}

/// The body of a post (documentation): one activity, or an array of 1 to 25.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub(crate) enum PostBody {
    /// One activity.
    One(Box<PostedActivityJson>),
    /// Up to 25 activities.
    Many(Vec<PostedActivityJson>),
}

/// Who made a change (documentation).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct AuthorJson {
    /// Required, not blank.
    fullName: String,
    /// Optional.
    email: Option<String>,
}

/// Creates one or more activities.
#[utoipa::path(
    post,
    path = "/api/v1/activityhistory",
    request_body(
        content = PostBody,
        description = "One activity, or an array of 1 to 25",
        content_type = "application/json"
    ),
    responses(
        (status = 202, description = "Queued for the listener, which records them, usually within a second; each is then readable at its `url`", body = AcceptedJson),
        (status = 400, description = "The body is not JSON, or an item is invalid; the message names the item (from 0), the field and what to fix, and nothing was queued", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is in none of ACTIVITY_WRITER_GROUPS, or may not read an item's target type", body = ErrorBody),
        (status = 405, description = "Writing is not enabled on this API", body = ErrorBody),
        (status = 409, description = "An item's id is already a recorded activity with other content", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB, or one activity over 256 KiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as application/json", body = ErrorBody),
        (status = 503, description = "The activity queue is unavailable; the message says which items, if any, were queued", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut log = AccessLog::new(&caller, Route::Create);
    let result = post(&state, &caller, &headers, body, &mut log).await;
    super::activities::answer(result, &mut log)
}

async fn post(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let ingest = writer(state, caller)?;
    let items = read_items(headers, body).await?;
    let items = validate(items, &state.mapping, caller)?;
    // A new id per post: the caller's x-correlation-id is the caller's to choose.
    let posting = Posting {
        correlation_id: Some(Uuid::new_v4()),
        posted_by: caller.sub.clone(),
    };
    log.post_id = posting.correlation_id;
    // Each item's digest, worked out once: it signs the message, deduplicates
    // it on the queue and tells a repeat from a conflict.
    let digests: Vec<String> = items.iter().map(PostedActivity::digest).collect();
    let messages = messages(&items, &digests, &posting, &ingest.key)?;
    check_ids(&state.store, &items, &digests).await?;
    if let Err(failed) = ingest.send(&items, &messages, &digests).await {
        log.targets = failed
            .accepted
            .iter()
            .filter_map(|&i| Some(items.get(i)?.target_id))
            .collect();
        log.records = failed.accepted.len();
        return Err(queue_failed(&items, failed));
    }
    log.targets = items.iter().map(|p| p.target_id).collect();
    log.records = items.len();
    let results = items
        .iter()
        .map(|p| Accepted {
            id: p.id,
            target_id: p.target_id,
            url: super::activities::absolute_url(
                headers,
                &format!("/api/v1/activityhistory/{}", p.id),
            ),
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(AcceptedJson { results })).into_response())
}

/// The ingest settings, when writing is enabled and the caller is a writer.
fn writer<'a>(state: &'a AppState, caller: &Caller) -> Result<&'a Ingest, ApiError> {
    let ingest = state.ingest.as_deref().ok_or_else(|| {
        ApiError::NotWritable(
            "writing is not enabled on this API (it has no ACTIVITY_INGEST_QUEUE_URL); it only reads history".into(),
        )
    })?;
    if !ingest.is_writer(&caller.groups) {
        return Err(ApiError::Forbidden(
            "the caller is in none of the groups allowed to post activities".into(),
        ));
    }
    Ok(ingest)
}

/// Each item's signed queue message, none over what one activity may hold.
fn messages(
    items: &[PostedActivity],
    digests: &[String],
    posting: &Posting,
    key: &domain::posted::IngestKey,
) -> Result<Vec<String>, ApiError> {
    let messages: Vec<String> = (items.iter().zip(digests))
        .map(|(p, digest)| p.to_message(digest, posting, key))
        .collect();
    if let Some(i) = messages.iter().position(|m| m.len() > MAX_MESSAGE_BYTES) {
        return Err(ApiError::PayloadTooLarge(format!(
            "item {i} is over {MAX_MESSAGE_BYTES} bytes, the most one activity may hold (as for an event)"
        )));
    }
    Ok(messages)
}

/// An id already recorded stays that activity's: a repeat of it (same target,
/// same content) is fine and records nothing new; anything else is a 409 now,
/// rather than a conflict the listener would dead-letter later.
async fn check_ids(
    store: &crate::store::Store,
    items: &[PostedActivity],
    digests: &[String],
) -> Result<(), ApiError> {
    for (i, (p, posted)) in items.iter().zip(digests).enumerate() {
        let Some(recorded) = store.by_id(p.id, &crate::access::Visible::All).await? else {
            continue;
        };
        let digest = recorded.provenance.and_then(|pr| pr.event_digest);
        if recorded.target_id != p.target_id || digest.as_ref() != Some(posted) {
            return Err(ApiError::Conflict(format!(
                "item {i}: id {} is already a recorded activity with other content; history is append-only, so post a new id",
                p.id
            )));
        }
    }
    Ok(())
}

/// The body's activities: one object, or an array of 1 to [`MAX_ITEMS`].
async fn read_items(headers: &HeaderMap, body: Body) -> Result<Vec<Value>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "send the activities as JSON, with Content-Type: application/json".into(),
        ));
    }
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the body is over {MAX_BODY_BYTES} bytes; send fewer activities per request"
        ))
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            if format!("{e:#}").contains("length limit") {
                too_large()
            } else {
                ApiError::BadRequest(format!("the body could not be read: {e}"))
            }
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    match value {
        Value::Object(_) => Ok(vec![value]),
        Value::Array(items) if items.is_empty() => Err(ApiError::BadRequest(
            "the array is empty; send at least one activity".into(),
        )),
        Value::Array(items) if items.len() > MAX_ITEMS => Err(ApiError::BadRequest(format!(
            "the array has {} activities; send at most {MAX_ITEMS} per request",
            items.len()
        ))),
        Value::Array(items) => Ok(items),
        _ => Err(ApiError::BadRequest(
            "the body should be an activity (a JSON object) or an array of them".into(),
        )),
    }
}

/// Every item checked before any is queued: the listener's rules, one id per
/// activity, and target types the caller may read.
fn validate(
    items: Vec<Value>,
    mapping: &domain::Mapping,
    caller: &Caller,
) -> Result<Vec<PostedActivity>, ApiError> {
    let now = Timestamp::now();
    let visible = caller.visible()?;
    let mut valid: Vec<PostedActivity> = Vec::with_capacity(items.len());
    for (i, mut item) in items.into_iter().enumerate() {
        posted::fill_defaults(&mut item, now);
        let p = PostedActivity::from_value(item, Some(mapping), now)
            .map_err(|e| ApiError::BadRequest(format!("item {i}: {e}")))?;
        if let Some(days) = p.retention_days
            && p.created_at.plus_days(days) < now
        {
            return Err(ApiError::BadRequest(format!(
                "item {i}: field `timetoLiveForRecord` should keep the record past today: {days} days after createdAt has already passed"
            )));
        }
        if let Some(j) = valid.iter().position(|v| v.id == p.id) {
            return Err(ApiError::BadRequest(format!(
                "item {i}: id {} is also item {j}'s; each activity needs its own id",
                p.id
            )));
        }
        if !visible.allows(&p.target_type) {
            return Err(ApiError::Forbidden(format!(
                "item {i}: your groups may not read targetType `{}`, so you may not post it",
                p.target_type
            )));
        }
        valid.push(p);
    }
    Ok(valid)
}

fn queue_failed(items: &[PostedActivity], failed: SendFailed) -> ApiError {
    tracing::error!(error = %failed.error, accepted = failed.accepted.len(), "sending posted activities failed");
    let accepted = if failed.accepted.is_empty() {
        "none of the activities was queued".to_owned()
    } else {
        let ids: Vec<String> = (failed.accepted.iter())
            .filter_map(|&i| Some(format!("item {i} ({})", items.get(i)?.id)))
            .collect();
        format!("queued and to be recorded: {}", ids.join(", "))
    };
    ApiError::QueueUnavailable(format!(
        "the activity queue is unavailable; {accepted}; post the others again shortly (with their ids, posting one again records it once)"
    ))
}
