//! The HTTP API of activity-history (docs/contracts.md §4, and more).
//!
//! - [`http`]: the routes, one module per group, merged with docs and layers.
//! - [`params`]: query parameters parsed into valid values, with messages that say what to fix.
//! - [`store`]: the DynamoDB reads, each logged for support staff.
//! - [`model`]: the JSON shapes, apart from the stored shape.
//! - [`merged`]: several targets' histories as one, keyset-paged.
//! - [`ingest`]: posted activities, validated and queued for the listener.
//! - [`auth`]: bearer JWT verification (HS256, or RS256/ES256 from a JWKS).
//! - [`access`]: who may read which target types, how much one answer holds, the access log.
//! - [`correlation`]: the `x-correlation-id` of every request and log line.
//! - [`error`]: the one error type and its JSON body.
//! - [`config`]: the `activity-api` command line and environment.
//! - [`app`]: the program behind the `activity-api` binary.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use tower::ServiceExt;

pub mod access;
pub mod app;
pub mod auth;
pub mod config;
pub mod correlation;
pub mod error;
pub mod http;
pub mod ingest;
pub mod merged;
pub mod model;
pub mod params;
pub mod store;

pub use http::{ApiDoc, HttpSettings};

/// What every handler shares; built once per process.
#[derive(Clone)]
pub struct AppState {
    /// The table.
    pub store: store::Store,
    /// Signs and checks page tokens.
    pub token_key: domain::token::TokenKey,
    /// Checks bearer tokens.
    pub verifier: Arc<auth::Verifier>,
    /// What each caller may read, and how much one answer may hold.
    pub access: Arc<access::Policy>,
    /// The listener's mapping: the target types that may be posted, and which
    /// records belong to another entity (a finance record on a tenancy, an
    /// `inState = false` event).
    pub mapping: Arc<domain::Mapping>,
    /// Where posted activities are queued; `None`: the API is read-only.
    pub ingest: Option<Arc<ingest::Ingest>>,
}

/// The router, built apart from serving so tests call it without a socket.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    http::router(state, settings)
}

/// The service to serve: the router behind path normalisation.
///
/// `use<>`: the service copies what it needs from `settings`, so it does not
/// borrow them and can outlive them (tests box it; `serve` moves it to a task).
pub fn app(
    state: AppState,
    settings: &HttpSettings,
) -> impl tower::Service<
    Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send + use<>,
>
+ Clone
+ Send
+ 'static
+ use<> {
    router(state, settings).map_request(http::normalize_path)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in
/// flight finish.
///
/// Served by hyper-util rather than `axum::serve`, which has no header-read
/// timeout: a client that sends its headers slowly, or nothing at all, or leaves a
/// keep-alive connection idle, is disconnected after
/// `settings.header_read_timeout`, so a crowd of them cannot hold every
/// connection. HTTP/1 only: detecting HTTP/2 first waits for the client's first
/// bytes with no timeout, so a silent client would be held for ever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    settings: &HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;

    let service = app(state, settings)
        .map_request(|req: Request<hyper::body::Incoming>| req.map(axum::body::Body::new));
    let service = hyper_util::service::TowerToHyperService::new(service);
    let mut connections = auto::Builder::new(TokioExecutor::new()).http1_only();
    connections
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = connections.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Clients hanging up and header timeouts end up here: routine.
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed accept: a connection that went away before it was accepted is
/// routine; anything else (out of file descriptors) waits a moment, so the loop
/// neither spins nor takes the server down.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionRefused | K::ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// The same router taking the requests `lambda_http` builds from API Gateway events.
pub fn lambda_service(
    state: AppState,
    settings: &HttpSettings,
) -> impl tower::Service<
    lambda_http::Request,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send + use<>,
>
+ Clone
+ Send
+ 'static
+ use<> {
    let service = app(state, settings);
    tower::service_fn(move |req: lambda_http::Request| {
        let service = service.clone();
        async move { service.oneshot(req.map(axum::body::Body::new)).await }
    })
}

/// Serves API Gateway (HTTP API, payload v2) requests through the same router
/// when running on AWS Lambda.
pub async fn run_lambda(
    state: AppState,
    settings: &HttpSettings,
) -> Result<(), lambda_http::Error> {
    lambda_http::run(lambda_service(state, settings)).await
}
