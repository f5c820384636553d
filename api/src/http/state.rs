//! `GET /api/v1/activityhistory/state`: an entity as it was at a moment, its
//! records folded (domain::fold), with the work bounded like a page.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use domain::mapping::Rule;
use domain::{Activity, Mapping, Timestamp};

use crate::AppState;
use crate::access::{AccessLog, Caller, Route};
use crate::error::{ApiError, ErrorBody};
use crate::model::StateJson;
use crate::params::StateQuery;
use crate::store::Keep;

/// Query parameters of the state (documentation; parsing is in `params`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct StateParams {
    /// GUID of the entity.
    targetId: uuid::Uuid,
    /// As of when: an ISO 8601 date-time, or a date (its end); now when absent.
    /// From 1900 on.
    at: Option<String>,
    /// The target type whose state to fold (e.g. `tenurePerson` on a tenure);
    /// by default that of the target's oldest record, its own.
    targetType: Option<String>,
}

/// An entity as its history knows it at a moment.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory/state",
    params(StateParams),
    responses(
        (status = 200, description = "The entity as its records up to `at` make it; at most the last 1,000 records are folded", body = StateJson),
        (status = 400, description = "targetId, at or targetType is invalid", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group, or its groups give access to no records", body = ErrorBody),
        (status = 404, description = "The target has no record the caller may read at or before `at`", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn state(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut log = AccessLog::new(&caller, Route::State);
    let result = state_at(&state, &caller, raw.as_deref(), &mut log).await;
    super::activities::answer(result, &mut log)
}

async fn state_at(
    state: &AppState,
    caller: &Caller,
    raw: Option<&str>,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let q = StateQuery::parse(raw, Timestamp::now())?;
    (log.target_id, log.filters) = (Some(q.target_id), format!("at={}", q.at));
    let visible = caller.visible()?;
    let Some(own) = own_type(state, &q).await? else {
        return Err(not_found(&q));
    };
    let keep = |a: &Activity| {
        if a.target_type != own || of_another_entity(a, &state.mapping) {
            Keep::Other
        } else if visible.allows(&a.target_type) {
            Keep::Fold
        } else {
            Keep::Withheld
        }
    };
    let history = state
        .store
        .history_for_state(q.target_id, q.at, &keep)
        .await?;
    let Some(folded) = domain::fold::fold(&history.records) else {
        return Err(not_found(&q));
    };
    log.records = folded.activities;
    Ok(Json(StateJson {
        target_id: q.target_id,
        target_type: folded.target_type,
        at: q.at.to_table_string(),
        state: folded.state,
        complete: folded.complete && !history.partial,
        deleted: folded.deleted,
        activities: folded.activities,
        last_changed_at: folded.last_changed_at.to_table_string(),
    })
    .into_response())
}

fn not_found(q: &StateQuery) -> ApiError {
    ApiError::NotFound(format!(
        "target {} has no activities you may read at or before {}",
        q.target_id, q.at
    ))
}

/// The target type whose state is folded: the one asked for, or else that of
/// the target's oldest record of its own (a tenure's first record is its
/// creation; its household and finance records, of other target types, are
/// about related entities and are left out).
async fn own_type(state: &AppState, q: &StateQuery) -> Result<Option<String>, ApiError> {
    if let Some(t) = &q.target_type {
        return Ok(Some(t.clone()));
    }
    let oldest = state.store.oldest(q.target_id, OLDEST_READ).await?;
    Ok(oldest
        .into_iter()
        .find(|a| !of_another_entity(a, &state.mapping))
        .map(|a| a.target_type))
}

/// Records read to find the target's own type.
const OLDEST_READ: usize = 10;

/// A record a target holds about another entity, so not part of its state: the
/// second record of a finance event, on the tenancy the transaction belongs to,
/// holds the transaction; an event the mapping marks `inState = false` (e.g.
/// `ProcessStartedAgainstTenureEvent`) holds the process.
fn of_another_entity(a: &Activity, mapping: &Mapping) -> bool {
    let Some(event_type) = a.provenance.as_ref().map(|p| p.event_type.as_str()) else {
        return false;
    };
    matches!(mapping.rule(event_type), Ok(Rule::Record(r))
        if !r.in_state || (r.target_type != a.target_type && r.also_on_entity_target.as_deref() == Some(a.target_type.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(event_type: &str, target_type: &str) -> Activity {
        let body = domain::sample::event(
            event_type,
            uuid::Uuid::new_v4(),
            serde_json::json!({}),
            serde_json::json!({"a": 1}),
        );
        let mut body = body;
        body["entityTargetId"] = serde_json::json!(uuid::Uuid::new_v4());
        let domain::Outcome::Record(records) =
            domain::transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
        else {
            panic!("records")
        };
        records
            .into_iter()
            .find(|r| r.target_type == target_type)
            .unwrap()
    }

    #[test]
    fn finance_and_against_records_are_another_entitys_and_the_rest_the_targets_own() {
        let m = Mapping::default();
        assert!(of_another_entity(
            &recorded("TransactionCreatedEvent", "tenure"),
            &m
        ));
        assert!(!of_another_entity(
            &recorded("TransactionCreatedEvent", "transaction"),
            &m
        ));
        assert!(of_another_entity(
            &recorded("ProcessStartedAgainstTenureEvent", "tenure"),
            &m
        ));
        assert!(!of_another_entity(
            &recorded("TenureUpdatedEvent", "tenure"),
            &m
        ));
        assert!(!of_another_entity(
            &recorded("PersonCreatedEvent", "person"),
            &m
        ));
    }
}
