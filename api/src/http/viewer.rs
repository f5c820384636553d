//! The history viewer: a page for people, served by the API with its assets
//! embedded in the binary. The page and its assets need no token; the data they
//! fetch from the history routes does. Every value is inserted into the page as
//! text by the script; the Content-Security-Policy allows scripts and styles from
//! this origin only, no inline script, and requests to this origin only.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const PAGE: &str = include_str!("../../assets/viewer/index.html");
const SCRIPT: &str = include_str!("../../assets/viewer/viewer.js");
const STYLE: &str = include_str!("../../assets/viewer/viewer.css");

/// The placeholder in the page that names the token cookie.
const COOKIE_META: &str = r#"<meta name="activity-token-cookie" content="">"#;

/// What the viewer's answers allow a browser to do.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The viewer's routes (no authentication: the page holds no data). The page
/// names the token cookie (`ACTIVITY_TOKEN_COOKIE`) when one is set.
pub(crate) fn router(token_cookie: Option<&str>) -> Router<AppState> {
    let html = axum::body::Bytes::from(page_html(token_cookie));
    let page = move || {
        let html = html.clone();
        async move { with_headers(html, "text/html; charset=utf-8") }
    };
    Router::new()
        .route("/history", get(page.clone()))
        .route("/history/", get(page.clone()))
        .route("/history/activity/{id}", get(page))
        .route("/history/assets/viewer.js", get(script))
        .route("/history/assets/viewer.css", get(style))
}

/// The page with the cookie's name filled in. The name is checked at start to be
/// a cookie token, so it needs no escaping; it is escaped all the same.
fn page_html(token_cookie: Option<&str>) -> String {
    let Some(name) = token_cookie else {
        return PAGE.to_owned();
    };
    let meta = format!(
        r#"<meta name="activity-token-cookie" content="{}">"#,
        escape_attribute(name)
    );
    PAGE.replacen(COOKIE_META, &meta, 1)
}

async fn script() -> Response {
    with_headers(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    with_headers(STYLE, "text/css; charset=utf-8")
}

/// An answer of the viewer: its body (shared, never copied) and its headers.
fn with_headers(body: impl Into<axum::body::Body>, content_type: &'static str) -> Response {
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether `name` is a valid cookie name (RFC 6265 token): anything else is
/// refused at start.
pub fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_placeholder_the_server_fills() {
        assert!(PAGE.contains(COOKIE_META));
        assert!(!PAGE.contains("<script>"), "no inline script");
        assert!(!PAGE.contains("style="), "no inline style");
    }

    #[test]
    fn the_cookie_name_is_filled_in_as_an_attribute() {
        assert!(page_html(Some("hackneyToken")).contains(r#"content="hackneyToken""#));
        assert!(page_html(Some("a\"b")).contains(r#"content="a&quot;b""#));
        assert!(page_html(None).contains(COOKIE_META));
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(is_cookie_name("hackneyToken"));
        assert!(!is_cookie_name("a b"));
        assert!(!is_cookie_name("a\"><script>"));
        assert!(!is_cookie_name(""));
    }
}
