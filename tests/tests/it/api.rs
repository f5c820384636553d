//! The read API against DynamoDB Local: the answers that depend on what the table
//! holds. Each test gets a table of its own and no topics or queues. Most call the
//! service with `oneshot`; the frontend's walk, the export and one auth case
//! go over a real socket, so serving is proven end to end. Refusals decided before
//! the table is asked (400, 401, 403, 414, 431) are tested without emulators in
//! `api/tests/http.rs`.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use domain::{Mapping, Outcome, item, transform};
use integration_tests::table::RunningApi;
use integration_tests::table::{App, TableOnly, table_only};
use integration_tests::{hs256_auth, hs256_token, sign};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// An item exactly as the old .NET writer stored it.
fn old_item(target: Uuid, created_at: &str) -> item::Item {
    HashMap::from([
        ("targetId".to_owned(), s(&target.to_string())),
        ("id".to_owned(), s(&Uuid::new_v4().to_string())),
        ("type".to_owned(), s("update")),
        ("targetType".to_owned(), s("tenure")),
        ("createdAt".to_owned(), s(created_at)),
        (
            "timetoLiveForRecord".to_owned(),
            AttributeValue::N("0".into()),
        ),
        ("oldData".to_owned(), AttributeValue::Null(true)),
        (
            "newData".to_owned(),
            AttributeValue::M(HashMap::from([("status".to_owned(), s("active"))])),
        ),
        (
            "authorDetails".to_owned(),
            AttributeValue::M(HashMap::from([
                ("fullName".to_owned(), s("Old Writer")),
                ("email".to_owned(), s("old.writer@example.gov.uk")),
            ])),
        ),
        ("sourceDomain".to_owned(), s("Tenure")),
    ])
}

/// A new-format activity on `target` at `date_time`.
fn new_item(target: Uuid, date_time: &str, event_type: &str, old: Value, new: Value) -> item::Item {
    let mut body = integration_tests::event(event_type, target, old, new);
    body["dateTime"] = json!(date_time);
    let Outcome::Record(r) = transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    item::to_item(&r[0]).unwrap()
}

/// 30 activities on one tenure: 20 written by this service, 10 by the old one,
/// interleaved in time. Returns the createdAt values newest first.
async fn seed_thirty(t: &TableOnly, target: Uuid) -> Vec<String> {
    let mut items = Vec::new();
    let mut times = Vec::new();
    for i in 0..30u32 {
        let t = format!("2024-03-{:02}T10:{:02}:00.{:07}Z", 1 + i / 2, i, i * 11);
        if i % 3 == 0 {
            items.push(old_item(target, &t));
        } else {
            items.push(new_item(
                target,
                &t,
                "TenureUpdatedEvent",
                json!({"rent": i}),
                json!({"rent": i + 1}),
            ));
        }
        times.push(t);
    }
    t.put_items(items).await;
    times.sort();
    times.reverse();
    times
}

/// Four activities on one tenure: a create, two updates and an old-writer update.
async fn seed_four(t: &TableOnly, target: Uuid) {
    t.put_items(vec![
        new_item(
            target,
            "2024-01-10T09:00:00Z",
            "TenureCreatedEvent",
            Value::Null,
            json!({"status": "new", "rent": 100}),
        ),
        new_item(
            target,
            "2024-02-10T09:00:00Z",
            "TenureUpdatedEvent",
            json!({"rent": 100}),
            json!({"rent": 110}),
        ),
        new_item(
            target,
            "2024-03-10T09:00:00Z",
            "TenureUpdatedEvent",
            json!({"rent": 110, "status": "new"}),
            json!({"rent": 120, "status": "active"}),
        ),
        old_item(target, "2024-04-10T09:00:00.0000000Z"),
    ])
    .await;
}

/// How a test reaches the API.
enum Transport {
    /// Straight into the service: no socket, no port.
    Oneshot(App),
    /// Over real HTTP, to prove serving end to end; stopped when dropped.
    Socket {
        http: reqwest::Client,
        running: RunningApi,
    },
}

/// A caller with a valid HS256 token.
struct Client {
    transport: Transport,
    token: String,
}

impl Client {
    async fn oneshot(t: &TableOnly, auth: api::auth::AuthConfig) -> Self {
        Self {
            transport: Transport::Oneshot(t.app(auth).await),
            token: hs256_token(json!({})),
        }
    }

    async fn socket(t: &TableOnly, auth: api::auth::AuthConfig) -> Self {
        let running = t.serve_api(auth).await;
        Self {
            transport: Transport::Socket {
                http: reqwest::Client::new(),
                running,
            },
            token: hs256_token(json!({})),
        }
    }

    /// GET with `token` (none: no Authorization header): status, headers, body.
    async fn send(&self, path_and_query: &str, token: Option<&str>) -> (u16, HeaderMap, String) {
        match &self.transport {
            Transport::Oneshot(app) => {
                let mut req = Request::get(path_and_query);
                if let Some(t) = token {
                    req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
                }
                let r = app
                    .clone()
                    .oneshot(req.body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let (status, headers) = (r.status().as_u16(), r.headers().clone());
                let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                    .await
                    .unwrap();
                (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
            }
            Transport::Socket { http, running } => {
                let mut req = http.get(format!("{}{path_and_query}", running.base));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.unwrap();
                let (status, headers) = (r.status().as_u16(), r.headers().clone());
                (status, headers, r.text().await.unwrap())
            }
        }
    }

    async fn get(&self, path_and_query: &str) -> (u16, HeaderMap, Value) {
        let (status, headers, text) = self.send(path_and_query, Some(&self.token)).await;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn text(&self, path_and_query: &str) -> (u16, String) {
        let (status, _, text) = self.send(path_and_query, Some(&self.token)).await;
        (status, text)
    }
}

#[tokio::test]
async fn the_frontends_walk_returns_all_thirty_newest_first_with_no_gap_or_duplicate() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    let expected = seed_thirty(&t, target).await;
    let c = Client::socket(&t, hs256_auth()).await;

    let mut seen = Vec::new();
    let mut ids = HashSet::new();
    let mut url = format!("/api/v1/activityhistory?targetId={target}&pageSize=5");
    let mut pages = 0;
    loop {
        let (status, headers, body) = c.get(&url).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let results = body["results"].as_array().unwrap();
        assert!(results.len() <= 5);
        for r in results {
            seen.push(r["createdAt"].as_str().unwrap().to_owned());
            assert!(
                ids.insert(r["id"].as_str().unwrap().to_owned()),
                "duplicate {r}"
            );
            assert_eq!(r["targetId"], json!(target.to_string()));
            assert!(r["authorDetails"]["fullName"].is_string());
        }
        match body["paginationDetails"]["nextToken"].as_str() {
            None => {
                assert!(body["paginationDetails"]["nextToken"].is_null());
                assert!(headers.get("link").is_none());
                break;
            }
            Some(t) => {
                let link = headers.get("link").unwrap().to_str().unwrap();
                assert!(link.ends_with("rel=\"next\""), "{link}");
                assert!(
                    body["paginationDetails"]["nextUrl"]
                        .as_str()
                        .unwrap()
                        .starts_with("http://")
                );
                url = format!(
                    "/api/v1/activityHistory?targetId={target}&pageSize=5&paginationToken={t}"
                );
            }
        }
        assert!(pages <= 6, "more pages than 30 items need");
    }
    assert_eq!(pages, 6);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn old_writer_items_are_served_as_the_old_service_served_them() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items(vec![old_item(target, "2021-09-14T10:02:31.5738462Z")])
        .await;
    let c = Client::oneshot(&t, hs256_auth()).await;
    let (status, _, body) = c
        .get(&format!("/api/v1/activityhistory?targetId={target}"))
        .await;
    assert_eq!(status, 200);
    let a = &body["results"][0];
    assert_eq!(a["type"], "update");
    assert_eq!(a["targetType"], "tenure");
    assert_eq!(a["createdAt"], "2021-09-14T10:02:31.5738462Z");
    assert_eq!(a["timetoLiveForRecord"], 0);
    assert_eq!(a["oldData"], Value::Null);
    assert_eq!(a["newData"], json!({"status": "active"}));
    assert_eq!(
        a["authorDetails"],
        json!({"fullName": "Old Writer", "email": "old.writer@example.gov.uk"})
    );
    assert_eq!(a["sourceDomain"], "Tenure");
    for provenance in ["eventType", "sourceSystem", "correlationId"] {
        assert_eq!(
            a[provenance],
            Value::Null,
            "the old service kept no {provenance}"
        );
    }
}

#[tokio::test]
async fn filters_order_and_single_lookup_return_the_right_rows() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_four(&t, target).await;
    let c = Client::oneshot(&t, hs256_auth()).await;
    let base = format!("/api/v1/activityhistory?targetId={target}");

    let created = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["createdAt"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, _, body) = c.get(&format!("{base}&type=create")).await;
    assert_eq!(created(&body), ["2024-01-10T09:00:00.0000000Z"]);
    let (_, _, body) = c
        .get(&format!("{base}&from=2024-02-01&to=2024-03-31"))
        .await;
    assert_eq!(
        created(&body),
        [
            "2024-03-10T09:00:00.0000000Z",
            "2024-02-10T09:00:00.0000000Z"
        ]
    );
    let (_, _, body) = c.get(&format!("{base}&order=asc&pageSize=2")).await;
    assert_eq!(
        created(&body),
        [
            "2024-01-10T09:00:00.0000000Z",
            "2024-02-10T09:00:00.0000000Z"
        ]
    );
    let (_, _, body) = c
        .get(&format!("{base}&type=update&from=2024-03-01T00:00:00Z"))
        .await;
    assert_eq!(created(&body).len(), 2, "new and old update after 1 March");
    // A filter that matches nothing on a target with history is an empty page, not a 404.
    let (status, _, body) = c.get(&format!("{base}&type=delete")).await;
    assert_eq!(
        (status, body["results"].as_array().unwrap().len()),
        (200, 0)
    );

    // Single lookup by id.
    let (_, _, body) = c.get(&base).await;
    let first = body["results"][0].clone();
    let (status, _, one) = c
        .get(&format!(
            "/api/v1/activityhistory/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one, first);
}

#[tokio::test]
async fn exports_give_one_row_per_changed_field_as_csv_or_ndjson() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_four(&t, target).await;
    let c = Client::socket(&t, hs256_auth()).await;

    // CSV export, read with a CSV parser: one row per changed field.
    let url = format!("/api/v1/activityhistory/export?targetId={target}&format=csv&order=asc");
    let (status, headers, text) = c.send(&url, Some(&c.token)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"activity-history-{target}.csv\"")
    );
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "activityId",
            "createdAt",
            "type",
            "targetType",
            "targetId",
            "authorName",
            "path",
            "old",
            "new"
        ]
    );
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    let summary: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[2].to_owned(),
                r[6].to_owned(),
                r[7].to_owned(),
                r[8].to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("create".into(), "/rent".into(), "".into(), "100".into()),
            ("create".into(), "/status".into(), "".into(), "new".into()),
            ("update".into(), "/rent".into(), "100".into(), "110".into()),
            ("update".into(), "/rent".into(), "110".into(), "120".into()),
            (
                "update".into(),
                "/status".into(),
                "new".into(),
                "active".into()
            ),
            (
                "update".into(),
                "".into(),
                "".into(),
                "{\"status\":\"active\"}".into()
            ),
        ]
    );
    assert!(rows.iter().all(|r| &r[4] == target.to_string().as_str()));

    // NDJSON export with a filter.
    let (status, text) = c
        .text(&format!(
            "/api/v1/activityhistory/export?targetId={target}&format=ndjson&type=create"
        ))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["new"], json!(100));
    assert_eq!(lines[0]["authorName"], "Paul Fox");
}

#[tokio::test]
async fn a_csv_export_neutralises_formulas_and_keeps_numbers() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    let mut body = integration_tests::event(
        "PersonCreatedEvent",
        target,
        Value::Null,
        json!({
            "a": "=HYPERLINK(\"http://evil.example\",\"x\")",
            "b": "-12.5",
            "c": -3,
            "d": "@SUM(A1:A9)",
            "e": "-2+3",
        }),
    );
    body["user"]["name"] = json!("+Mallory");
    let Outcome::Record(r) = transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    t.put_items(vec![item::to_item(&r[0]).unwrap()]).await;
    let c = Client::oneshot(&t, hs256_auth()).await;

    let export = format!("/api/v1/activityhistory/export?targetId={target}");
    let (status, text) = c.text(&format!("{export}&format=csv")).await;
    assert_eq!(status, 200, "{text}");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let cells: Vec<(String, String, String)> = rdr
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[5].to_owned(), r[6].to_owned(), r[8].to_owned())
        })
        .collect();
    let row = |path: &str, new: &str| ("'+Mallory".to_owned(), path.to_owned(), new.to_owned());
    assert_eq!(
        cells,
        vec![
            row("/a", "'=HYPERLINK(\"http://evil.example\",\"x\")"),
            row("/b", "-12.5"),
            row("/c", "-3"),
            row("/d", "'@SUM(A1:A9)"),
            row("/e", "'-2+3"),
        ]
    );
    // NDJSON is data, not a spreadsheet: values are exactly as recorded.
    let (_, ndjson) = c.text(&format!("{export}&format=ndjson")).await;
    let first: Value = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
    assert_eq!(first["new"], "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(first["authorName"], "+Mallory");
}

fn assert_error(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], json!(expected));
    assert!(
        body["message"].as_str().unwrap().contains(needle),
        "{body} should mention {needle:?}"
    );
    assert!(!body["correlationId"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn a_next_token_resumes_only_the_query_it_came_from() {
    let t = table_only().await;
    let (target, other) = (Uuid::new_v4(), Uuid::new_v4());
    seed_thirty(&t, target).await;
    seed_thirty(&t, other).await;
    let c = Client::oneshot(&t, hs256_auth()).await;
    let list = "/api/v1/activityhistory";
    let (_, _, first) = c.get(&format!("{list}?targetId={target}&pageSize=5")).await;
    let token = first["paginationDetails"]["nextToken"].as_str().unwrap();
    let mut tampered = token.as_bytes().to_vec();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = &token[..token.len() / 2];

    let cases = [
        (
            format!("{list}?targetId={target}&paginationToken={tampered}"),
            "altered",
        ),
        (
            format!("{list}?targetId={target}&paginationToken={truncated}"),
            "paginationToken",
        ),
        (
            format!("{list}?targetId={other}&paginationToken={token}"),
            "different targetId",
        ),
        (
            format!("{list}?targetId={target}&order=asc&paginationToken={token}"),
            "different filters",
        ),
    ];
    for (url, needle) in cases {
        let (status, _, body) = c.get(&url).await;
        assert_error(status, &body, 400, needle);
    }
    // The same token with its own query still resumes.
    let (status, _, body) = c
        .get(&format!(
            "{list}?targetId={target}&pageSize=5&paginationToken={token}"
        ))
        .await;
    assert_eq!(
        (status, body["results"].as_array().map(Vec::len)),
        (200, Some(5)),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_targets_and_ids_are_404() {
    let t = table_only().await;
    let c = Client::oneshot(&t, hs256_auth()).await;
    let nobody = Uuid::new_v4();
    for url in [
        format!("/api/v1/activityhistory?targetId={nobody}"),
        format!("/api/v1/activityhistory?targetId={nobody}&type=create"),
        format!("/api/v1/activityhistory/{nobody}"),
        format!("/api/v1/activityhistory/export?targetId={nobody}"),
    ] {
        let (status, _, body) = c.get(&url).await;
        assert_error(status, &body, 404, "no activit");
    }
}

/// Every way of checking tokens at once: HS256, the JWKS fixture, issuer,
/// audience and groups.
fn full_auth() -> api::auth::AuthConfig {
    api::auth::AuthConfig {
        hs256_secret: Some(integration_tests::JWT_SECRET.as_bytes().to_vec()),
        jwks: Some(api::auth::JwksSource::File(integration_tests::fixture(
            "jwt/jwks.json",
        ))),
        issuer: Some("https://idp.example".into()),
        audience: Some("activity-history".into()),
        allowed_groups: vec!["housing-staff".into(), "finance-staff".into()],
        ..Default::default()
    }
}

/// Over a real socket: the full refusal matrix is in `api/tests/http.rs`.
#[tokio::test]
async fn tokens_are_verified_for_real_over_http() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items(vec![old_item(target, "2024-01-01T00:00:00.0000000Z")])
        .await;
    let c = Client::socket(&t, full_auth()).await;
    let pem = |p: &str| std::fs::read(integration_tests::fixture(p)).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&pem("jwt/rsa-private.pem")).unwrap();
    let untrusted = EncodingKey::from_rsa_pem(&pem("jwt/rsa-other-private.pem")).unwrap();
    let claims = json!({"iss": "https://idp.example", "aud": "activity-history"});
    let good = sign(Algorithm::RS256, &rsa, Some("test-rsa"), claims.clone());
    let forged = sign(Algorithm::RS256, &untrusted, Some("test-rsa"), claims);
    let no_iss = sign(
        Algorithm::RS256,
        &rsa,
        Some("test-rsa"),
        json!({"aud": "activity-history"}),
    );
    let no_aud = sign(
        Algorithm::RS256,
        &rsa,
        Some("test-rsa"),
        json!({"iss": "https://idp.example"}),
    );
    let url = format!("/api/v1/activityhistory?targetId={target}");

    let (status, _, text) = c.send(&url, Some(&good)).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1));

    for (what, token, needle) in [
        ("forged signature", Some(forged.as_str()), "signature"),
        ("no iss claim", Some(no_iss.as_str()), "no iss claim"),
        ("no aud claim", Some(no_aud.as_str()), "no aud claim"),
        ("no token", None, "Authorization: Bearer"),
    ] {
        let (status, headers, text) = c.send(&url, token).await;
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_error(status, &body, 401, needle);
        assert!(body.get("results").is_none(), "{what} returned data");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
    }

    // Health (which asks the table) and docs need no token.
    for path in ["/api/v1/healthcheck/ping", "/api/v1/openapi.json"] {
        let (status, _, text) = c.send(path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
}

// ---------------------------------------------------------------------------
// A slow JWKS refresh holds up only the tokens that wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long the identity provider takes to answer a refresh.
const SLOW_FETCH: Duration = Duration::from_secs(5);

/// A JWKS endpoint on loopback serving the test keys: the first fetch (the
/// verifier's start) is answered at once, every later one after [`SLOW_FETCH`].
struct SlowJwks {
    url: String,
    fetches: Arc<AtomicUsize>,
    refetch_started: Arc<tokio::sync::Notify>,
}

async fn slow_jwks() -> SlowJwks {
    let body = std::fs::read_to_string(integration_tests::fixture("jwt/jwks.json")).unwrap();
    let fetches = Arc::new(AtomicUsize::new(0));
    let refetch_started = Arc::new(tokio::sync::Notify::new());
    let (count, started) = (fetches.clone(), refetch_started.clone());
    let handler = move || {
        let (count, started, body) = (count.clone(), started.clone(), body.clone());
        async move {
            if count.fetch_add(1, Ordering::SeqCst) > 0 {
                started.notify_one();
                tokio::time::sleep(SLOW_FETCH).await;
            }
            ([(header::CONTENT_TYPE, "application/json")], body)
        }
    };
    let app = axum::Router::new().route("/jwks.json", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    SlowJwks {
        url,
        fetches,
        refetch_started,
    }
}

#[tokio::test]
async fn a_slow_jwks_refresh_does_not_hold_up_tokens_signed_with_known_keys() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items(vec![old_item(target, "2024-01-01T00:00:00.0000000Z")])
        .await;
    let jwks = slow_jwks().await;
    let auth = api::auth::AuthConfig {
        jwks: Some(api::auth::JwksSource::Url(jwks.url.clone())),
        // An unknown kid may fetch at once, so the test need not wait a minute.
        jwks_refetch_after: Duration::ZERO,
        ..Default::default()
    };
    let c = Client::socket(&t, auth).await;
    let pem = |p: &str| std::fs::read(integration_tests::fixture(p)).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&pem("jwt/rsa-private.pem")).unwrap();
    let other = EncodingKey::from_rsa_pem(&pem("jwt/rsa-other-private.pem")).unwrap();
    let known = sign(Algorithm::RS256, &rsa, Some("test-rsa"), json!({}));
    let unknown = sign(Algorithm::RS256, &other, Some("rotated"), json!({}));
    let url = format!("/api/v1/activityhistory?targetId={target}");
    let (status, _, text) = c.send(&url, Some(&known)).await;
    assert_eq!(status, 200, "before any refresh: {text}");

    // A token naming a key the API has not seen starts a slow fetch.
    let waiting = c.send(&url, Some(&unknown));
    tokio::pin!(waiting);
    let refetching = async {
        tokio::select! {
            _ = &mut waiting => panic!("answered before the JWKS was fetched again"),
            () = jwks.refetch_started.notified() => {}
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refetching)
        .await
        .expect("the unknown kid never fetched the JWKS again");

    // While it is in flight, a token with a known key is answered.
    let answered = tokio::time::timeout(SLOW_FETCH / 2, c.send(&url, Some(&known)))
        .await
        .expect("a token with a known key waited for the JWKS fetch");
    assert_eq!(answered.0, 200, "{}", answered.2);

    // A second unknown kid waits for the fetch in flight rather than starting one.
    let (first, second) = tokio::join!(&mut waiting, c.send(&url, Some(&unknown)));
    for (status, _, text) in [first, second] {
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_error(status, &body, 401, "kid");
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "one fetch at start and one refresh"
    );
}
