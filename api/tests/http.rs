//! The service `api::app` builds, called with `oneshot`: no socket, no emulators.
//!
//! Routing, parameters, authentication and limits are all decided before the
//! table is asked, so these tests need none. The table's client points at a
//! closed loopback port: a request that gets past every check reaches it and must
//! be a 503 that says to try again, never a 500. The last tests serve on a
//! loopback socket, for what only a connection shows: its timeouts.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::auth::{AuthConfig, JwksSource};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;
use tower::util::BoxCloneService;
use uuid::Uuid;

const JWT_SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
const TOKEN_KEY: &str = "test-page-token-key-0123456789";
const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "activity-history";
const LIST: &str = "/api/v1/activityhistory";

type App = BoxCloneService<Request, Response, Infallible>;

/// A key or JWKS under `tests/fixtures/jwt` (see its README).
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/jwt"
    ))
    .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A loopback address nothing listens on: a port bound and let go, so
/// connections to it are refused at once.
fn closed_port() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    drop(socket);
    format!("http://{addr}")
}

/// A table client that can never connect. Retries are off so each refused
/// request fails at once; the timeout only guards against a port that hangs.
fn unreachable_table() -> api::store::Store {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-2"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .endpoint_url(closed_port())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .build();
    api::store::Store {
        client: aws_sdk_dynamodb::Client::from_conf(config),
        table: "ActivityHistory".into(),
    }
}

/// HS256 with the test secret only.
fn hs256_auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(JWT_SECRET.as_bytes().to_vec()),
        ..AuthConfig::default()
    }
}

/// What a production deployment checks: both kinds of key, issuer, audience, groups.
fn full_auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(JWT_SECRET.as_bytes().to_vec()),
        jwks: Some(JwksSource::File(fixture("jwks.json"))),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        allowed_groups: vec!["housing-staff".into(), "finance-staff".into()],
        ..AuthConfig::default()
    }
}

/// RS256/ES256 from the JWKS fixture, with no issuer, audience or group checked.
fn jwks_only_auth() -> AuthConfig {
    AuthConfig {
        jwks: Some(JwksSource::File(fixture("jwks.json"))),
        ..AuthConfig::default()
    }
}

fn token_key() -> domain::token::TokenKey {
    domain::token::TokenKey::new(TOKEN_KEY.as_bytes().to_vec()).unwrap()
}

/// Signs `claims` over a valid default set (`sub`, `groups`, `iss`, `aud`, an hour
/// to live); a claim given as `null` is left out.
fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: Value) -> String {
    let mut all = json!({
        "sub": "tester", "groups": ["housing-staff"], "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "nbf": now(), "exp": now() + 3600,
    });
    let all_claims = all.as_object_mut().unwrap();
    for (k, v) in claims.as_object().unwrap() {
        match v {
            Value::Null => all_claims.remove(k),
            v => all_claims.insert(k.clone(), v.clone()),
        };
    }
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &all, key).unwrap()
}

fn hs256_token() -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        None,
        json!({}),
    )
}

fn rs256_token(claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem("rsa-private.pem")).unwrap();
    sign(Algorithm::RS256, &key, Some("test-rsa"), claims)
}

/// A page token as the API would issue it for `target` with no filters, newest first.
fn page_token(target: Uuid) -> String {
    let resume = domain::token::PageKey {
        id: Uuid::new_v4().to_string(),
        created_at: Some("2024-03-10T10:20:00.0000220Z".into()),
    };
    let unfiltered = api::params::Filters::default().fingerprint();
    domain::token::encode(&token_key(), target, &unfiltered, &resume)
}

/// The service under test and a token it accepts.
struct Api {
    app: App,
    token: String,
}

/// The state every test API runs with: the unreachable table and `auth`.
async fn state(auth: AuthConfig) -> api::AppState {
    api::AppState {
        store: unreachable_table(),
        token_key: token_key(),
        verifier: Arc::new(api::auth::Verifier::new(auth).await.unwrap()),
        access: Default::default(),
        mapping: Default::default(),
        ingest: None,
    }
}

/// Settings with the defaults `activity-api` starts with, and `header_read_timeout`.
fn settings(header_read_timeout: Duration) -> api::HttpSettings {
    api::HttpSettings {
        cors_origins: vec![],
        token_cookie: None,
        request_timeout: Duration::from_secs(10),
        header_read_timeout,
    }
}

impl Api {
    async fn new(auth: AuthConfig) -> Self {
        let settings = settings(Duration::from_secs(10));
        Self {
            app: BoxCloneService::new(api::app(state(auth).await, &settings)),
            token: hs256_token(),
        }
    }

    /// GET with the accepted token.
    async fn get(&self, uri: &str) -> Reply {
        self.get_as(uri, Some(&self.token)).await
    }

    /// GET with `token`, or with no Authorization header.
    async fn get_as(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn send(&self, req: Request) -> Reply {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// What a caller sees of one answer.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// An error of `status` whose JSON body says `needle`, with data withheld and
    /// a correlation id to quote.
    fn assert_error(&self, status: u16, needle: &str, what: &str) {
        let body = &self.body;
        assert_eq!(self.status, status, "{what}: {body}");
        assert_eq!(body["status"], json!(status), "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: {body} should say {needle:?}"
        );
        assert!(body.get("results").is_none(), "{what} returned data");
        let id = body["correlationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{what}: {body} has no correlationId");
        assert_eq!(self.header("x-correlation-id"), Some(id), "{what}");
    }
}

#[tokio::test]
async fn both_spellings_of_the_history_path_reach_the_history_routes() {
    let api = Api::new(hs256_auth()).await;
    for path in [
        "/api/v1/activityhistory",
        "/api/v1/activityHistory",
        "/API/V1/ACTIVITYHISTORY",
    ] {
        // A 400 about the parameter proves the list route ran, not the 404 fallback.
        api.get(&format!("{path}?targetId=not-a-guid"))
            .await
            .assert_error(400, "targetId is not a GUID", path);
        api.get(&format!("{path}/not-a-guid"))
            .await
            .assert_error(400, "not an activity id", path);
        api.get(&format!("{path}/export?targetId=nope"))
            .await
            .assert_error(400, "targetId is not a GUID", path);
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404_that_points_at_the_docs() {
    let api = Api::new(hs256_auth()).await;
    for path in [
        "/api/v1/activityhistories?targetId=x",
        "/api/v2/activityhistory",
        "/nothing-here",
        "/abcé/X",
    ] {
        let reply = api.get_as(path, None).await;
        reply.assert_error(404, "see /docs", path);
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}"
        );
    }
}

/// Every way a query can be wrong, with what the answer must say. `token` is a
/// token for `target` with no filters.
fn bad_queries(target: Uuid, token: &str) -> Vec<(String, &'static str)> {
    let other = Uuid::new_v4();
    let mut tampered = token.as_bytes().to_vec();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = &token[..token.len() / 2];
    let q = |rest: &str| format!("{LIST}?targetId={target}&{rest}");
    vec![
        (format!("{LIST}?targetId=not-a-guid"), "not a GUID"),
        (format!("{LIST}?targetId="), "empty"),
        (LIST.to_string(), "targetId is required"),
        (format!("{LIST}?targetId={}", Uuid::nil()), "empty GUID"),
        (
            q(&(0..10)
                .map(|_| format!("targetId={}", Uuid::new_v4()))
                .collect::<Vec<_>>()
                .join("&")),
            "reads at most 10",
        ),
        (q("field=/"), "JSON Pointer"),
        (q(&format!("field={}", "/a".repeat(17))), "16 levels"),
        (
            format!("{LIST}/state?targetId={target}&at=1850-01-01"),
            "before 1900",
        ),
        (
            format!("{LIST}/state?targetId={target}&at=soon"),
            "at is not a date",
        ),
        (q("author=nobody"), "e-mail address"),
        (q("targetType=a%20b"), "not a target type"),
        (q("pageSize=0"), "at least 1"),
        (q("pageSize=-3"), "at least 1"),
        (q("pageSize=ten"), "whole number"),
        (q("pageSize=101"), "limit of 100"),
        (q(&format!("paginationToken={tampered}")), "altered"),
        // Cut base64 may still decode, so the reason is "truncated" or "altered".
        (
            q(&format!("paginationToken={truncated}")),
            "paginationToken",
        ),
        (q("paginationToken=%%%%"), "paginationToken"),
        (
            format!("{LIST}?targetId={other}&paginationToken={token}"),
            "different targetId",
        ),
        (
            q(&format!("order=asc&paginationToken={token}")),
            "different filters",
        ),
        (q("type=frobbed"), "not an activity type"),
        (q("from=last-tuesday"), "from is not a date"),
        (q("from=2024-05-01&to=2024-01-01"), "from is after to"),
        (q("order=random"), "asc or desc"),
        (format!("{LIST}/not-a-guid"), "not an activity id"),
        (
            format!("{LIST}/export?targetId={target}&format=xlsx"),
            "csv or ndjson",
        ),
        (format!("{LIST}/export?targetId=nope"), "not a GUID"),
    ]
}

#[tokio::test]
async fn bad_requests_get_a_400_that_says_what_to_fix() {
    let api = Api::new(hs256_auth()).await;
    let target = Uuid::new_v4();
    for (url, needle) in bad_queries(target, &page_token(target)) {
        api.get(&url).await.assert_error(400, needle, &url);
    }
}

#[tokio::test]
async fn tokens_the_api_trusts_get_past_authentication() {
    let api = Api::new(full_auth()).await;
    let ec = EncodingKey::from_ec_pem(&pem("ec-private.pem")).unwrap();
    let hs = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let accepted = [
        ("RS256 from the JWKS", rs256_token(json!({}))),
        (
            "ES256 from the JWKS",
            sign(Algorithm::ES256, &ec, Some("test-ec"), json!({})),
        ),
        (
            "HS256 with the secret",
            sign(Algorithm::HS256, &hs, None, json!({})),
        ),
        (
            "one allowed group of several",
            rs256_token(json!({"groups": ["x", "finance-staff"]})),
        ),
        (
            "a single group as a string",
            rs256_token(json!({"groups": "finance-staff"})),
        ),
    ];
    let url = format!("{LIST}?targetId={}", Uuid::new_v4());
    for (what, token) in accepted {
        // Past authentication the next stop is the (unreachable) table.
        api.get_as(&url, Some(&token))
            .await
            .assert_error(503, "unavailable", what);
    }
}

/// A token with `alg: none`: valid claims, no signature.
fn unsigned_token() -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"sub": "x", "exp": now() + 3600, "groups": ["housing-staff"], "iss": ISSUER, "aud": AUDIENCE});
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// Tokens the API must refuse: what each is, the token, the status and what the
/// message must say.
fn untrusted_tokens() -> Vec<(&'static str, Option<String>, u16, &'static str)> {
    let untrusted = EncodingKey::from_rsa_pem(&pem("rsa-other-private.pem")).unwrap();
    // Algorithm confusion: an HS256 token whose secret is the RSA *public* key.
    let public_as_secret = EncodingKey::from_secret(&pem("rsa-public.pem"));
    let now = now();
    vec![
        ("no token", None, 401, "Authorization: Bearer"),
        ("not a JWT", Some("garbage".into()), 401, "not a signed JWT"),
        ("alg none", Some(unsigned_token()), 401, "alg none"),
        (
            "bad signature",
            Some(sign(
                Algorithm::RS256,
                &untrusted,
                Some("test-rsa"),
                json!({}),
            )),
            401,
            "signature",
        ),
        (
            "unknown kid",
            Some(sign(Algorithm::RS256, &untrusted, Some("who"), json!({}))),
            401,
            "kid",
        ),
        (
            "algorithm confusion",
            Some(sign(
                Algorithm::HS256,
                &public_as_secret,
                Some("test-rsa"),
                json!({}),
            )),
            401,
            "signature",
        ),
        (
            "expired",
            Some(rs256_token(json!({"exp": now - 3600}))),
            401,
            "expired",
        ),
        (
            "not yet valid",
            Some(rs256_token(json!({"nbf": now + 3600}))),
            401,
            "not valid yet",
        ),
        (
            "no exp",
            Some(rs256_token(json!({"exp": null}))),
            401,
            "no exp claim",
        ),
        (
            "no iss",
            Some(rs256_token(json!({"iss": null}))),
            401,
            "no iss claim",
        ),
        (
            "an iss that is not a string",
            Some(rs256_token(json!({"iss": 42}))),
            401,
            "no iss claim",
        ),
        (
            "no aud",
            Some(rs256_token(json!({"aud": null}))),
            401,
            "no aud claim",
        ),
        (
            "HS256 with no aud",
            Some(sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
                None,
                json!({"aud": null}),
            )),
            401,
            "no aud claim",
        ),
        (
            "wrong issuer",
            Some(rs256_token(json!({"iss": "https://evil.example"}))),
            401,
            "issuer",
        ),
        (
            "wrong audience",
            Some(rs256_token(json!({"aud": "another-api"}))),
            401,
            "audience",
        ),
        (
            "missing group",
            Some(rs256_token(json!({"groups": ["other"]}))),
            403,
            "none of the groups allowed to read history",
        ),
        (
            "no groups claim",
            Some(rs256_token(json!({"groups": null}))),
            403,
            "none of the groups allowed to read history",
        ),
    ]
}

#[tokio::test]
async fn tokens_it_cannot_trust_are_refused_with_the_reason() {
    let api = Api::new(full_auth()).await;
    let url = format!("{LIST}?targetId={}", Uuid::new_v4());
    for (what, token, status, needle) in untrusted_tokens() {
        let reply = api.get_as(&url, token.as_deref()).await;
        reply.assert_error(status, needle, what);
        let challenge = reply.header("www-authenticate");
        if status == 401 {
            // RFC 6750: the challenge names the scheme and repeats why.
            let challenge = challenge.unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"));
            assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        } else {
            assert_eq!(challenge, None, "{what}: a 403 is not a challenge");
        }
    }
}

#[tokio::test]
async fn iss_and_aud_are_required_when_the_api_checks_them_and_only_then() {
    let checks_both = Api::new(full_auth()).await;
    let checks_neither = Api::new(jwks_only_auth()).await;
    let url = format!("{LIST}?targetId={}", Uuid::new_v4());
    for (what, claims, needle) in [
        ("no iss", json!({"iss": null}), "the token has no iss claim"),
        ("no aud", json!({"aud": null}), "the token has no aud claim"),
        (
            "neither",
            json!({"iss": null, "aud": null}),
            "the token has no",
        ),
    ] {
        let token = rs256_token(claims);
        checks_both
            .get_as(&url, Some(&token))
            .await
            .assert_error(401, needle, what);
        // Past authentication the next stop is the (unreachable) table.
        checks_neither
            .get_as(&url, Some(&token))
            .await
            .assert_error(503, "unavailable", what);
    }
}

#[tokio::test]
async fn a_caller_in_no_allowed_group_is_not_told_which_groups_are_allowed() {
    let api = Api::new(full_auth()).await;
    let url = format!("{LIST}?targetId={}", Uuid::new_v4());
    let reply = api
        .get_as(&url, Some(&rs256_token(json!({"groups": ["tenants"]}))))
        .await;
    reply.assert_error(
        403,
        "the caller is in none of the groups allowed to read history",
        "wrong group",
    );
    let headers = format!("{:?}", reply.headers);
    for name in ["housing-staff", "finance-staff"] {
        assert!(!reply.body.to_string().contains(name), "{}", reply.body);
        assert!(!headers.contains(name), "{headers}");
    }
}

#[tokio::test]
async fn a_jwks_url_in_the_clear_to_another_machine_is_refused_at_start() {
    for url in ["http://idp.example/jwks.json", "http://10.1.2.3/jwks"] {
        let auth = AuthConfig {
            jwks: Some(JwksSource::Url(url.into())),
            ..AuthConfig::default()
        };
        let Err(e) = api::auth::Verifier::new(auth).await else {
            panic!("{url} was trusted");
        };
        let message = e.to_string();
        assert!(message.contains(url), "{message}");
        assert!(message.contains("use https://"), "{message}");
    }
}

#[tokio::test]
async fn history_answers_are_never_stored_and_no_answer_is_sniffed() {
    let api = Api::new(full_auth()).await;
    let (target, token) = (Uuid::new_v4(), api.token.clone());
    let outsider = rs256_token(json!({"groups": ["tenants"]}));
    let history = [
        (format!("{LIST}?targetId={target}"), Some(&token), 503),
        (format!("{LIST}?targetId=nope"), Some(&token), 400),
        (format!("/api/v1/activityHistory/{target}"), None, 401),
        (
            format!("{LIST}/export?targetId={target}"),
            Some(&outsider),
            403,
        ),
        (format!("{LIST}/{target}/more"), Some(&token), 404),
        (
            format!("{LIST}?targetId={target}&pad={}", "x".repeat(9000)),
            Some(&token),
            414,
        ),
    ];
    for (url, token, status) in history {
        let reply = api.get_as(&url, token.map(String::as_str)).await;
        let what = &url[..url.len().min(80)];
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
    }
    for open in ["/api/v1/openapi.json", "/api/v1/healthcheck/ping", "/docs/"] {
        let reply = api.get_as(open, None).await;
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{open}"
        );
    }
}

#[tokio::test]
async fn every_history_route_needs_a_token() {
    let api = Api::new(hs256_auth()).await;
    let target = Uuid::new_v4();
    for url in [
        format!("{LIST}?targetId={target}"),
        format!("{LIST}/{target}"),
        format!("{LIST}/export?targetId={target}"),
    ] {
        api.get_as(&url, None)
            .await
            .assert_error(401, "Authorization: Bearer", &url);
    }
}

#[tokio::test]
async fn health_and_docs_need_no_token() {
    let api = Api::new(full_auth()).await;
    let docs = api.get_as("/api/v1/openapi.json", None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.body["paths"][LIST].is_object(), "{}", docs.body);
    // Health asks the table, which is unreachable here: a 503, not a 401.
    api.get_as("/api/v1/healthcheck/ping", None)
        .await
        .assert_error(503, "unavailable", "health");
}

#[tokio::test]
async fn an_unreachable_table_is_a_503_that_says_to_try_again_and_hides_why() {
    let api = Api::new(hs256_auth()).await;
    let target = Uuid::new_v4();
    for url in [
        format!("{LIST}?targetId={target}"),
        format!(
            "{LIST}?targetId={target}&paginationToken={}",
            page_token(target)
        ),
        format!("{LIST}?targetId={target}&type=create"),
        format!("{LIST}/{target}"),
        format!("{LIST}/export?targetId={target}"),
        format!("{LIST}/export?targetId={target}&format=ndjson"),
    ] {
        let reply = api.get(&url).await;
        reply.assert_error(503, "unavailable; try again shortly", &url);
        // Internals are logged, never sent.
        let text = reply.body.to_string();
        assert!(
            !text.contains("127.0.0.1") && !text.contains("dispatch"),
            "{url}: {text}"
        );
    }
}

#[tokio::test]
async fn oversized_query_strings_and_headers_are_refused_before_any_work() {
    let api = Api::new(hs256_auth()).await;
    let url = format!("{LIST}?targetId={}", Uuid::new_v4());
    api.get(&format!("{url}&pad={}", "x".repeat(20_000)))
        .await
        .assert_error(414, "send a shorter query", "long URI");

    let padded = Request::get(&url)
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
        .header("x-padding", "y".repeat(40_000))
        .body(Body::empty())
        .unwrap();
    api.send(padded)
        .await
        .assert_error(431, "headers are over", "large headers");

    // A token of absurd size is refused as a token, not a crash.
    api.get_as(&url, Some(&"a".repeat(20_000)))
        .await
        .assert_error(401, "not a signed JWT", "huge token");
}

#[tokio::test]
async fn a_callers_correlation_id_is_echoed_on_the_response_and_in_the_error() {
    let api = Api::new(hs256_auth()).await;
    let req = Request::get(format!("{LIST}?targetId=bad"))
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
        .header("x-correlation-id", "support-ticket-42")
        .body(Body::empty())
        .unwrap();
    let reply = api.send(req).await;
    assert_eq!(reply.header("x-correlation-id"), Some("support-ticket-42"));
    assert_eq!(reply.body["correlationId"], "support-ticket-42");
}

#[tokio::test]
async fn a_correlation_id_is_generated_when_the_caller_sends_none() {
    let api = Api::new(hs256_auth()).await;
    let first = api.get(&format!("{LIST}?targetId=bad")).await;
    let second = api.get(&format!("{LIST}?targetId=bad")).await;
    let id = first.header("x-correlation-id").unwrap();
    assert!(Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(first.body["correlationId"], id);
    assert_ne!(
        second.header("x-correlation-id"),
        Some(id),
        "ids are per request"
    );
}

// Serving over a loopback socket: what only a connection shows.

/// The header timeout the socket tests serve with.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Far past `HEADER_TIMEOUT`: a server that enforces it has closed the connection
/// by then; one that does not would hold it for ever.
const WELL_PAST: Duration = Duration::from_secs(5);

/// `api::serve` on a free loopback port, stopped by `stop`.
struct Served {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn served() -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = state(hs256_auth()).await;
    let done = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        api::serve(listener, state, &settings(HEADER_TIMEOUT), shutdown).await
    });
    Served { addr, stop, done }
}

/// Reads until the server closes the connection: what it sent, or `None` when it
/// was still open after `within`.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let reading = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            received.extend_from_slice(&buf[..n]);
        }
        received
    };
    tokio::time::timeout(within, reading).await.ok()
}

#[tokio::test]
async fn clients_that_stall_before_their_headers_are_complete_are_disconnected() {
    use tokio::io::AsyncWriteExt;
    let served = served().await;
    for (what, sent) in [
        ("nothing at all", &b""[..]),
        ("half a request line", &b"GET /api/v1/activityhis"[..]),
        (
            "a request line and no end of headers",
            &b"GET /api/v1/healthcheck/ping HTTP/1.1\r\nHost: x\r\n"[..],
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(served.addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let closed = read_until_closed(&mut stream, WELL_PAST).await;
        assert!(
            closed.is_some(),
            "a client that sent {what} was still connected after {WELL_PAST:?}"
        );
    }
}

#[tokio::test]
async fn a_client_trickling_its_request_line_is_disconnected_all_the_same() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let served = served().await;
    let mut stream = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    // A byte every 200 ms: never idle for long, never done (10 s for the line).
    let trickle = async {
        for byte in b"GET /api/v1/healthcheck/ping?padding=xxxxxxxxxxxx HTTP/1.1\r\n" {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let closed = async {
        let mut buf = [0u8; 1024];
        while let Ok(1..) = reader.read(&mut buf).await {}
    };
    let outcome = tokio::time::timeout(WELL_PAST, async {
        tokio::select! {
            () = closed => {},
            () = trickle => {},
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "a trickling client was still connected after {WELL_PAST:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    use tokio::io::AsyncWriteExt;
    let served = served().await;
    let mut stream = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    stream
        .write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, WELL_PAST)
        .await
        .expect("the idle connection was still open");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
}

#[tokio::test]
async fn a_prompt_request_is_answered_and_shutdown_lets_serve_return() {
    let served = served().await;
    let url = format!("http://{}/api/v1/openapi.json", served.addr);
    let response = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let document: Value = response.json().await.unwrap();
    assert!(document["paths"][LIST].is_object());

    served.stop.send(()).unwrap();
    let stopped = tokio::time::timeout(WELL_PAST, served.done).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve did not return after shutdown: {stopped:?}"
    );
}

// Posting: everything a post is refused for is decided before the queue is
// asked; the queue's client points at a closed port, so a post that passes every
// check is a 503 saying nothing was queued.

const WRITERS: &str = "history-writers";

/// An SQS client that can never connect, retries off.
fn unreachable_queue() -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("eu-west-2"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .endpoint_url(closed_port())
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

impl Api {
    /// The API with posting enabled for [`WRITERS`] and access `rules`.
    async fn writable(rules: api::access::Rules) -> Self {
        let mut state = state(hs256_auth()).await;
        state.ingest = Some(Arc::new(api::ingest::Ingest {
            sqs: unreachable_queue(),
            queue_url: "http://127.0.0.1:1/queue/activities.fifo".into(),
            writer_groups: vec![WRITERS.into()],
            key: domain::posted::IngestKey::new([5u8; 32]).unwrap(),
        }));
        state.access = Arc::new(api::access::Policy {
            rules,
            ..Default::default()
        });
        let settings = settings(Duration::from_secs(10));
        Self {
            app: BoxCloneService::new(api::app(state, &settings)),
            token: writer_token(),
        }
    }

    /// POST `body` to the list route as `content_type`, with the accepted token.
    async fn post(&self, content_type: &str, body: impl Into<Body>) -> Reply {
        let req = Request::post(LIST)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.send(req).await
    }

    async fn post_json(&self, body: &Value) -> Reply {
        self.post("application/json", body.to_string()).await
    }
}

fn writer_token() -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        None,
        json!({"groups": ["housing-staff", WRITERS]}),
    )
}

fn activity() -> Value {
    json!({
        "id": Uuid::new_v4(), "type": "migrate", "targetType": "tenure",
        "targetId": Uuid::new_v4(), "createdAt": "2021-02-19T15:12:00Z",
        "newData": { "paymentReference": "123" },
        "authorDetails": { "fullName": "Migration Team", "email": "migration@example.gov.uk" }
    })
}

#[tokio::test]
async fn without_an_ingest_queue_a_post_is_a_405_saying_writing_is_not_enabled() {
    let api = Api::new(hs256_auth()).await;
    let reply = api.post_json(&activity()).await;
    reply.assert_error(405, "writing is not enabled", "read-only API");
    assert_eq!(reply.header("allow"), Some("GET"));
}

#[tokio::test]
async fn only_writers_may_post() {
    let mut api = Api::writable(api::access::Rules::open()).await;
    api.token = hs256_token();
    api.post_json(&activity())
        .await
        .assert_error(403, "groups allowed to post", "a reader");
}

#[tokio::test]
async fn a_body_that_is_not_json_or_not_activities_is_refused_with_what_to_send() {
    let api = Api::writable(api::access::Rules::open()).await;
    api.post("text/plain", activity().to_string())
        .await
        .assert_error(415, "Content-Type: application/json", "text/plain");
    api.post("application/json", "{\"id\": ")
        .await
        .assert_error(400, "not JSON", "cut short");
    api.post_json(&json!([]))
        .await
        .assert_error(400, "at least one", "empty array");
    api.post_json(&json!("activity")).await.assert_error(
        400,
        "an activity (a JSON object) or an array",
        "a string",
    );
    let many: Vec<Value> = (0..26).map(|_| activity()).collect();
    api.post_json(&Value::from(many))
        .await
        .assert_error(400, "at most 25", "26 activities");
    let huge = json!({"newData": {"notes": "x".repeat(1024 * 1024)}});
    api.post_json(&huge)
        .await
        .assert_error(413, "over 1048576 bytes", "over 1 MB");
    let mut large = activity();
    large["newData"]["notes"] = json!("x".repeat(300 * 1024));
    api.post_json(&json!([activity(), large]))
        .await
        .assert_error(413, "item 1 is over 262144 bytes", "one item over 256 KiB");
}

#[tokio::test]
async fn an_invalid_item_is_named_by_its_index_and_field() {
    let api = Api::writable(api::access::Rules::open()).await;
    let cases = [
        (
            1,
            "type",
            json!("edit"),
            "field `type` should be one of create, update",
        ),
        (
            2,
            "targetId",
            json!("not-a-guid"),
            "item 2: field `targetId` is not a GUID",
        ),
        (
            0,
            "authorDetails",
            Value::Null,
            "item 0: required field `authorDetails` is missing",
        ),
        (
            1,
            "targetType",
            json!("tenancy"),
            "should be one of the target types",
        ),
        (
            0,
            "timetoLiveForRecord",
            json!(30),
            "30 days after createdAt has already passed",
        ),
    ];
    for (index, field, value, needle) in cases {
        let mut items = vec![activity(), activity(), activity()];
        items[index][field] = value;
        let reply = api.post_json(&Value::from(items)).await;
        reply.assert_error(400, &format!("item {index}: "), field);
        reply.assert_error(400, needle, field);
    }
    let twice = activity();
    api.post_json(&json!([activity(), twice, twice]))
        .await
        .assert_error(400, "item 2: id", "the same id twice");
}

#[tokio::test]
async fn a_writer_may_post_only_target_types_it_may_read() {
    let rules = api::access::Rules::parse(
        "[groups]\n\"housing-staff\" = [\"person\"]\n\"history-writers\" = [\"person\"]\n",
    )
    .unwrap();
    let api = Api::writable(rules).await;
    let mut person = activity();
    person["targetType"] = json!("person");
    api.post_json(&json!([person, activity()]))
        .await
        .assert_error(
            403,
            "item 1: your groups may not read targetType `tenure`",
            "tenure",
        );
}

#[tokio::test]
async fn a_valid_post_the_api_cannot_check_or_queue_is_a_503_that_says_to_try_again() {
    // The table is asked first (is an id already recorded?), and cannot answer.
    let api = Api::writable(api::access::Rules::open()).await;
    api.post_json(&activity()).await.assert_error(
        503,
        "try again shortly",
        "unreachable table and queue",
    );
}

#[tokio::test]
async fn the_viewer_page_and_assets_need_no_token_and_carry_a_strict_policy() {
    let api = Api::new(hs256_auth()).await;
    for (path, content_type) in [
        ("/history/", "text/html; charset=utf-8"),
        (
            "/history/activity/6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
            "text/html; charset=utf-8",
        ),
        (
            "/history/assets/viewer.js",
            "text/javascript; charset=utf-8",
        ),
        ("/history/assets/viewer.css", "text/css; charset=utf-8"),
    ] {
        let reply = api.get_as(path, None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        let policy = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe"),
            "{path}: {policy}"
        );
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}
