//! `/api/v1/activityhistory`: a target's history in pages (docs/contracts.md §4), one
//! activity by id, and the analysts' export.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use domain::token::{self, PageKey};
use futures::StreamExt;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{ActivityJson, ExportRow, PageJson, PaginationDetails};
use crate::params::{ExportQuery, Format, ListQuery};

/// The routes of this module (all behind authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/activityhistory", get(list))
        .route("/api/v1/activityhistory/export", get(export))
        .route("/api/v1/activityhistory/{id}", get(by_id))
}

/// Query parameters of the history list (documentation; parsing is in `params`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct ListParams {
    /// GUID of the entity whose history you want.
    targetId: Uuid,
    /// Items per page, 1 to 100; default 10.
    #[param(minimum = 1, maximum = 100)]
    pageSize: Option<u32>,
    /// `nextToken` of the previous page, exactly as returned.
    paginationToken: Option<String>,
    /// Only these activity types (`create`, `update`, `delete`, `migrate`, `end`);
    /// repeat the parameter or separate with commas.
    r#type: Option<String>,
    /// Only activities at or after this date or date-time (ISO 8601).
    from: Option<String>,
    /// Only activities at or before this date or date-time (ISO 8601).
    to: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    #[param(inline)]
    order: Option<OrderParam>,
}

/// Sort direction (documentation).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum OrderParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Export format (documentation).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum FormatParam {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// Query parameters of the export (documentation).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct ExportParams {
    /// GUID of the entity whose history you want.
    targetId: Uuid,
    /// `csv` (default) or `ndjson`.
    #[param(inline)]
    format: Option<FormatParam>,
    /// Only these activity types; repeat or separate with commas.
    r#type: Option<String>,
    /// Only activities at or after this date or date-time.
    from: Option<String>,
    /// Only activities at or before this date or date-time.
    to: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(inline)]
    order: Option<OrderParam>,
}

/// The absolute URL of the next page: this request's URL with the new token.
fn next_url(headers: &HeaderMap, raw: Option<&str>, token: &str) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !k.eq_ignore_ascii_case("paginationToken") {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("paginationToken", token);
    format!("{proto}://{host}/api/v1/activityhistory?{}", q.finish())
}

/// A target's history, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory",
    params(ListParams),
    responses(
        (status = 200, description = "A page of history; `Link: <next>; rel=\"next\"` when more exist", body = PageJson),
        (status = 400, description = "A parameter or the token is invalid; the message says which", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group", body = ErrorBody),
        (status = 404, description = "The target has no activities", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(raw.as_deref())?;
    let fingerprint = q.filters.fingerprint();
    let start = match &q.token {
        None => None,
        Some(t) => Some(
            token::decode(&state.token_key, q.target_id, &fingerprint, t)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        ),
    };
    let first_page = start.is_none();
    let page = state
        .store
        .page(q.target_id, &q.filters, start, q.page_size as usize)
        .await?;
    if page.items.is_empty() && first_page && page.next.is_none() {
        let unfiltered =
            q.filters.types.is_empty() && q.filters.from.is_none() && q.filters.to.is_none();
        // The contract's 404 means "this target has no history"; a filter that
        // matches nothing on a target that has history is an empty page.
        if unfiltered || !state.store.has_any(q.target_id).await? {
            return Err(ApiError::NotFound(format!(
                "no activities found for target {}",
                q.target_id
            )));
        }
    }
    let next_token = page
        .next
        .map(|k: PageKey| token::encode(&state.token_key, q.target_id, &fingerprint, &k));
    let next_url = next_token
        .as_deref()
        .map(|t| next_url(&headers, raw.as_deref(), t));
    let body = PageJson {
        results: page
            .items
            .into_iter()
            .map(ActivityJson::from_activity)
            .collect(),
        pagination_details: PaginationDetails {
            next_token,
            next_url: next_url.clone(),
        },
    };
    let mut response = Json(body).into_response();
    if let Some(link) =
        next_url.and_then(|u| HeaderValue::from_str(&format!("<{u}>; rel=\"next\"")).ok())
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// One activity by its id.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory/{id}",
    params(("id" = Uuid, Path, description = "Activity id")),
    responses(
        (status = 200, description = "The activity", body = ActivityJson),
        (status = 400, description = "The id is not a GUID", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group", body = ErrorBody),
        (status = 404, description = "No activity has this id", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActivityJson>, ApiError> {
    let id = domain::event::parse_guid(&id).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`{}` is not an activity id (a GUID)",
            id.chars().take(64).collect::<String>()
        ))
    })?;
    match state.store.by_id(id).await? {
        Some(a) => Ok(Json(ActivityJson::from_activity(a))),
        None => Err(ApiError::NotFound(format!("no activity has id {id}"))),
    }
}

/// Items fetched per request while exporting.
const EXPORT_PAGE: usize = 100;

fn encode_rows(format: Format, activities: &[domain::Activity]) -> Result<Bytes, std::io::Error> {
    let rows = activities.iter().flat_map(ExportRow::rows);
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                w.write_record(r.csv_record())?;
            }
            w.into_inner()
                .map(Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
        Format::Ndjson => {
            let mut out = Vec::new();
            for r in rows {
                serde_json::to_writer(&mut out, &r)?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

/// A target's history as one row per changed field, streamed (for Qlik and spreadsheets).
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory/export",
    params(ExportParams),
    responses(
        (status = 200, description = "CSV with a header row, or NDJSON; one row per changed field", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group", body = ErrorBody),
        (status = 404, description = "The target has no activities", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = ExportQuery::parse(raw.as_deref())?;
    // The first page is read before answering, so a missing target is a real 404
    // and a store failure a real 503, not a broken stream.
    let first = state
        .store
        .page(q.target_id, &q.filters, None, EXPORT_PAGE)
        .await?;
    if first.items.is_empty() && first.next.is_none() && !state.store.has_any(q.target_id).await? {
        return Err(ApiError::NotFound(format!(
            "no activities found for target {}",
            q.target_id
        )));
    }
    let header_chunk = match q.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(ExportRow::CSV_HEADER)
                .map_err(|e| ApiError::Unexpected(e.into()))?;
            Some(Bytes::from(w.into_inner().map_err(|e| {
                ApiError::Unexpected(anyhow::anyhow!(e.to_string()))
            })?))
        }
        Format::Ndjson => None,
    };
    let format = q.format;
    let pages = futures::stream::unfold(Some((first.items, first.next)), move |state_page| {
        let store = state.store.clone();
        let filters = q.filters.clone();
        async move {
            let (items, next) = state_page?;
            let chunk = encode_rows(format, &items);
            let following = match next {
                None => None,
                Some(k) => match store
                    .page(q.target_id, &filters, Some(k), EXPORT_PAGE)
                    .await
                {
                    Ok(p) => Some((p.items, p.next)),
                    Err(e) => {
                        tracing::error!(error = %e, "export stopped: the next page could not be read");
                        return Some((Err(std::io::Error::other("export interrupted")), None));
                    }
                },
            };
            Some((chunk, following))
        }
    });
    let body = futures::stream::iter(header_chunk.map(Ok)).chain(pages);
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"activity-history-{}.{ext}\"",
                    q.target_id
                ),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
