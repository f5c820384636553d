//! The HTTP surface: one module per route group, merged here with the docs, the
//! authentication boundary and the cross-cutting layers (among them the headers
//! that keep history out of caches); [`normalize_path`] runs before routing.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_swagger_ui::SwaggerUi;

use crate::AppState;
use crate::{auth, correlation};

pub(crate) mod activities;
pub(crate) mod create;
pub(crate) mod health;
pub(crate) mod merged;
mod path;
pub(crate) mod state;
pub mod viewer;

pub use path::normalize_path;

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "activity-history",
        description = "Who changed what, when, and from what to what: the history of every entity on the housing and finance platform.",
    ),
    paths(activities::list, create::create, state::state, activities::by_id, activities::export, health::ping),
    components(schemas(crate::model::PageJson, crate::model::ActivityJson, crate::error::ErrorBody, crate::model::AcceptedJson, crate::model::StateJson, create::PostedActivityJson)),
    modifiers(&BearerScheme),
    tags(
        (name = "history", description = "A target's history"),
        (name = "health", description = "Liveness of the API and its table"),
    )
)]
pub struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        http.description = Some(
            "A JWT signed by the platform's identity provider (claims: sub, email, name, groups)."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// Cross-cutting settings of the router.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Origins allowed to call from a browser; empty allows none.
    pub cors_origins: Vec<String>,
    /// Longest a request may take before a 503.
    pub request_timeout: Duration,
    /// The cookie the platform keeps the signed-in user's JWT in, which the viewer
    /// may read; `None`: the viewer takes the token from its address or its
    /// sign-in box only.
    pub token_cookie: Option<String>,
    /// Longest a client may take to send a request's headers, and longest an
    /// idle keep-alive connection stays open (`serve` only; Lambda has no
    /// connections of its own): a slow or silent client cannot hold connections.
    pub header_read_timeout: Duration,
}

/// Longest URI the API reads: far beyond any real query, short enough that a
/// hostile one costs nothing.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header bytes the API reads (a JWT with many groups fits easily).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses oversized URIs and headers before any work is done.
async fn limits(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return crate::error::ApiError::UriTooLong(format!(
            "the URI is over {MAX_URI_BYTES} bytes; send a shorter query"
        ))
        .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return crate::error::ApiError::HeadersTooLarge(format!(
            "the request headers are over {MAX_HEADER_BYTES} bytes"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Where the history routes live, once paths are lower-cased.
const HISTORY_PREFIX: &str = "/api/v1/activityhistory";

/// Headers on every answer. History holds residents' personal data, so each of
/// its answers (errors included) says `no-store`: no browser, proxy or shared
/// office computer keeps a copy. `nosniff` everywhere stops a browser from
/// reading a JSON or CSV answer as HTML or script.
async fn safety_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let history = req.uri().path().starts_with(HISTORY_PREFIX);
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if history {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole router: protected history routes, open health and docs, and layers.
pub(crate) fn router(state: AppState, settings: &HttpSettings) -> Router {
    let protected = activities::router().route_layer(axum::middleware::from_fn_with_state(
        state.verifier.clone(),
        auth::require,
    ));
    let origins: Vec<_> = settings
        .cors_origins
        .iter()
        .filter_map(|o| o.parse().ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            correlation::HEADER,
        ])
        .expose_headers([
            correlation::HEADER,
            header::LINK,
            HeaderName::from_static("content-disposition"),
        ]);
    Router::new()
        .merge(protected)
        .merge(health::router())
        .merge(viewer::router(settings.token_cookie.as_deref()))
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", ApiDoc::openapi()))
        .fallback(|| async {
            crate::error::ApiError::NotFound("no such route; see /docs for the API".into())
        })
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn(limits))
        .layer(axum::middleware::from_fn(correlation::layer))
        .layer(axum::middleware::from_fn(safety_headers))
}
