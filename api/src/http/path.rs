//! Path normalisation applied before routing, so the routes are declared once in lower case.

use axum::extract::Request;
use axum::http::Uri;

/// Lower-cases `/api/...` paths before routing: callers use both `activityhistory`
/// and `activityHistory` (docs/contracts.md §4), and ids are GUIDs, whose case does not matter.
/// The query string is left alone: its values (tokens, dates) are case-sensitive.
pub fn normalize_path(mut req: Request) -> Request {
    if let Some(uri) = lowered_api_uri(req.uri()) {
        *req.uri_mut() = uri;
    }
    req
}

/// The URI with its `/api/` path lower-cased, or `None` when nothing needs to change.
fn lowered_api_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    // Compared as bytes: a path may hold UTF-8, and slicing a `str` mid-character panics.
    let is_api = path
        .as_bytes()
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"/api/"));
    if !is_api || !path.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let lowered = path.to_ascii_lowercase();
    let path_and_query = match uri.query() {
        Some(q) => format!("{lowered}?{q}"),
        None => lowered,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;

    fn normalized(uri: &str) -> String {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        normalize_path(req).uri().to_string()
    }

    #[test]
    fn api_paths_are_lower_cased_and_the_query_keeps_its_case() {
        assert_eq!(
            normalized("/API/V1/ActivityHistory?targetId=ABC&paginationToken=XyZ"),
            "/api/v1/activityhistory?targetId=ABC&paginationToken=XyZ"
        );
    }

    #[test]
    fn paths_outside_the_api_are_untouched() {
        assert_eq!(normalized("/Docs/"), "/Docs/");
        assert_eq!(normalized("/Docs/Index.html?Q=1"), "/Docs/Index.html?Q=1");
    }

    #[test]
    fn a_path_with_no_upper_case_is_returned_unchanged() {
        let uri = "/api/v1/activityhistory/6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7?targetId=X";
        assert_eq!(normalized(uri), uri);
    }

    #[test]
    fn percent_encoded_paths_still_parse_after_lower_casing() {
        // `%7B` and `%7b` are the same octet (RFC 3986 §2.1), so lower-casing is harmless.
        assert_eq!(
            normalized("/api/v1/ActivityHistory/%7B6F22E9AE%7D?targetId=%C3%89"),
            "/api/v1/activityhistory/%7b6f22e9ae%7d?targetId=%C3%89"
        );
    }

    #[test]
    fn absolute_uris_keep_their_scheme_and_host() {
        assert_eq!(
            normalized("http://Example.org/API/V1/ActivityHistory?targetId=ABC"),
            "http://Example.org/api/v1/activityhistory?targetId=ABC"
        );
    }

    #[test]
    fn a_multi_byte_character_near_the_start_is_not_a_panic() {
        // 'é' spans bytes 4 and 5: a `str` slice of the first five bytes would panic.
        assert_eq!(normalized("/abcé/X"), "/abcé/X");
        assert_eq!(normalized("/apiéX"), "/apiéX");
    }
}
