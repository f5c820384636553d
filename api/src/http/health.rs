//! `GET /api/v1/healthcheck/ping`: answers 200 when the table is reachable. No auth,
//! so load balancers and the platform's monitors can call it.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/healthcheck/ping", get(ping))
}

/// The health answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `healthy` on a 200.
    status: &'static str,
}

/// Health check.
#[utoipa::path(
    get,
    path = "/api/v1/healthcheck/ping",
    responses(
        (status = 200, description = "The API and its table are reachable", body = Health),
        (status = 503, description = "The table is unreachable", body = ErrorBody),
    ),
    tag = "health"
)]
pub(crate) async fn ping(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.store.ping().await?;
    Ok(Json(Health { status: "healthy" }))
}
