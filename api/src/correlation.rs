//! The correlation id: accepted from `x-correlation-id` or generated, echoed on
//! the response, carried by every log line of the request and by error bodies.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Instrument, info, info_span};

/// The header callers and the platform use.
pub const HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

tokio::task_local! {
    /// The current request's correlation id, for error bodies built deep inside handlers.
    static CURRENT: String;
}

/// The current request's correlation id, or an empty string outside a request.
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_default()
}

/// Accepts a caller's id when it is short printable ASCII; anything else is
/// replaced, so a hostile header cannot flood or forge log lines.
fn accept(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Middleware: sets the id, runs the request in a span carrying it, logs the
/// outcome and echoes the id.
pub async fn layer(req: Request, next: Next) -> Response {
    let id = accept(req.headers().get(&HEADER));
    let span = info_span!("request", correlation_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let mut response = CURRENT
        .scope(id.clone(), async move { next.run(req).await })
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request served"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_kept_when_sane_and_replaced_otherwise() {
        assert_eq!(
            accept(Some(&HeaderValue::from_static("abc-123"))),
            "abc-123"
        );
        let long = "x".repeat(200);
        assert_ne!(accept(Some(&HeaderValue::from_str(&long).unwrap())), long);
        assert_ne!(
            accept(Some(&HeaderValue::from_static("has space"))),
            "has space"
        );
        assert_eq!(accept(None).len(), 36);
    }
}
