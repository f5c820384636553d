//! The read API over real HTTP against DynamoDB Local.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use domain::{Mapping, Outcome, item, transform};
use integration_tests::{TestStack, hs256_auth, hs256_token, provisioned, sign};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
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
    let body = json!({
        "id": Uuid::new_v4(), "eventType": event_type, "sourceDomain": "Tenure", "sourceSystem": "TenureAPI",
        "dateTime": date_time, "user": {"name": "Paul Fox", "email": "paul.fox@example.gov.uk"},
        "entityId": target, "eventData": {"oldData": old, "newData": new}
    });
    let Outcome::Record(r) = transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    item::to_item(&r[0]).unwrap()
}

/// 30 activities on one tenure: 20 written by this service, 10 by the old one,
/// interleaved in time. Returns the createdAt values newest first.
async fn seed_thirty(s: &TestStack, target: Uuid) -> Vec<String> {
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
    s.put_items(items).await;
    times.sort();
    times.reverse();
    times
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn get(&self, path_and_query: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn text(&self, path_and_query: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn client(
    s: &TestStack,
    auth: api::auth::AuthConfig,
) -> (Client, integration_tests::RunningApi) {
    let running = s.serve_api(auth).await;
    let c = Client {
        http: reqwest::Client::new(),
        base: running.base.clone(),
        token: hs256_token(json!({})),
    };
    (c, running)
}

#[tokio::test]
async fn the_frontends_walk_returns_all_thirty_newest_first_with_no_gap_or_duplicate() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    let expected = seed_thirty(&s, target).await;
    let (c, _api) = client(&s, hs256_auth()).await;

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
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    s.put_items(vec![old_item(target, "2021-09-14T10:02:31.5738462Z")])
        .await;
    let (c, _api) = client(&s, hs256_auth()).await;
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
}

#[tokio::test]
async fn filters_order_single_lookup_and_exports_return_the_right_rows() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    s.put_items(vec![
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
    let (c, _api) = client(&s, hs256_auth()).await;
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

    // CSV export, read with a CSV parser: one row per changed field.
    let (status, text) = c
        .text(&format!(
            "/api/v1/activityhistory/export?targetId={target}&format=csv&order=asc"
        ))
        .await;
    assert_eq!(status, 200);
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
async fn bad_requests_get_a_400_that_says_what_to_fix() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    let other = Uuid::new_v4();
    seed_thirty(&s, target).await;
    seed_thirty(&s, other).await;
    let (c, _api) = client(&s, hs256_auth()).await;
    let list = "/api/v1/activityhistory";
    let (_, _, first) = c.get(&format!("{list}?targetId={target}&pageSize=5")).await;
    let token = first["paginationDetails"]["nextToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = token.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = &token[..token.len() / 2];

    let cases: Vec<(String, &str)> = vec![
        (format!("{list}?targetId=not-a-guid"), "not a GUID"),
        (format!("{list}?targetId="), "empty"),
        (list.to_string(), "targetId is required"),
        (format!("{list}?targetId={target}&pageSize=0"), "at least 1"),
        (
            format!("{list}?targetId={target}&pageSize=-3"),
            "at least 1",
        ),
        (
            format!("{list}?targetId={target}&pageSize=ten"),
            "whole number",
        ),
        (
            format!("{list}?targetId={target}&pageSize=101"),
            "limit of 100",
        ),
        (
            format!("{list}?targetId={target}&pageSize=5&paginationToken={tampered}"),
            "paginationToken",
        ),
        (
            format!("{list}?targetId={target}&pageSize=5&paginationToken={truncated}"),
            "paginationToken",
        ),
        (
            format!("{list}?targetId={other}&pageSize=5&paginationToken={token}"),
            "different targetId",
        ),
        (
            format!("{list}?targetId={target}&pageSize=5&order=asc&paginationToken={token}"),
            "different filters",
        ),
        (
            format!("{list}?targetId={target}&pageSize=5&paginationToken=%%%%"),
            "paginationToken",
        ),
        (
            format!("{list}?targetId={target}&type=frobbed"),
            "not an activity type",
        ),
        (
            format!("{list}?targetId={target}&from=last-tuesday"),
            "from is not a date",
        ),
        (
            format!("{list}?targetId={target}&from=2024-05-01&to=2024-01-01"),
            "from is after to",
        ),
        (
            format!("{list}?targetId={target}&order=random"),
            "asc or desc",
        ),
        (
            "/api/v1/activityhistory/not-a-guid".to_string(),
            "not an activity id",
        ),
        (
            format!("{list}/export?targetId={target}&format=xlsx"),
            "csv or ndjson",
        ),
        (format!("{list}/export?targetId=nope"), "not a GUID"),
    ];
    for (url, needle) in cases {
        let (status, _, body) = c.get(&url).await;
        assert_error(status, &body, 400, needle);
    }
}

#[tokio::test]
async fn unknown_targets_and_ids_are_404() {
    let s = provisioned(false).await;
    let (c, _api) = client(&s, hs256_auth()).await;
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

#[tokio::test]
async fn tokens_are_verified_for_real() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    seed_thirty(&s, target).await;
    let jwks = integration_tests::fixture("jwt/jwks.json");
    let auth = api::auth::AuthConfig {
        hs256_secret: Some(integration_tests::JWT_SECRET.as_bytes().to_vec()),
        jwks: Some(api::auth::JwksSource::File(jwks)),
        issuer: Some("https://idp.example".into()),
        audience: Some("activity-history".into()),
        allowed_groups: vec!["housing-staff".into(), "finance-staff".into()],
    };
    let running = s.serve_api(auth).await;
    let url = format!("{}/api/v1/activityhistory?targetId={target}", running.base);
    let http = reqwest::Client::new();
    let pem = |p: &str| std::fs::read(integration_tests::fixture(p)).unwrap();
    let rsa = EncodingKey::from_rsa_pem(&pem("jwt/rsa-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&pem("jwt/ec-private.pem")).unwrap();
    let untrusted = EncodingKey::from_rsa_pem(&pem("jwt/rsa-other-private.pem")).unwrap();
    let hs = EncodingKey::from_secret(integration_tests::JWT_SECRET.as_bytes());
    let good = json!({"iss": "https://idp.example", "aud": "activity-history"});
    let with = |extra: Value| {
        let mut v = good.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(
            &json!({"sub": "x", "exp": now + 3600, "groups": ["housing-staff"], "iss": "https://idp.example", "aud": "activity-history"})
        )
    );
    // Algorithm confusion: an HS256 token whose secret is the RSA *public* key.
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&pem("jwt/rsa-public.pem")),
        Some("test-rsa"),
        good.clone(),
    );

    let accepted = [
        (
            "RS256 from the JWKS",
            sign(Algorithm::RS256, &rsa, Some("test-rsa"), good.clone()),
        ),
        (
            "ES256 from the JWKS",
            sign(Algorithm::ES256, &ec, Some("test-ec"), good.clone()),
        ),
        (
            "HS256 with the secret",
            sign(Algorithm::HS256, &hs, None, good.clone()),
        ),
        (
            "one allowed group of several",
            sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"groups": ["x", "finance-staff"]})),
            ),
        ),
    ];
    for (what, token) in accepted {
        let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{what}");
    }

    let refused: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "Authorization: Bearer"),
        ("not a JWT", Some("garbage".into()), 401, "not a signed JWT"),
        ("alg none", Some(alg_none), 401, "alg none"),
        (
            "bad signature",
            Some(sign(
                Algorithm::RS256,
                &untrusted,
                Some("test-rsa"),
                good.clone(),
            )),
            401,
            "signature",
        ),
        (
            "unknown kid",
            Some(sign(
                Algorithm::RS256,
                &untrusted,
                Some("who"),
                good.clone(),
            )),
            401,
            "kid",
        ),
        ("algorithm confusion", Some(confused), 401, "signature"),
        (
            "expired",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"exp": now - 3600})),
            )),
            401,
            "expired",
        ),
        (
            "not yet valid",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"nbf": now + 3600})),
            )),
            401,
            "not valid yet",
        ),
        (
            "wrong issuer",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"iss": "https://evil.example"})),
            )),
            401,
            "issuer",
        ),
        (
            "wrong audience",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"aud": "another-api"})),
            )),
            401,
            "audience",
        ),
        (
            "missing group",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"groups": ["other"]})),
            )),
            403,
            "housing-staff",
        ),
        (
            "no groups claim",
            Some(sign(
                Algorithm::RS256,
                &rsa,
                Some("test-rsa"),
                with(json!({"groups": null})),
            )),
            403,
            "groups",
        ),
    ];
    for (what, token, expected, needle) in refused {
        let mut req = http.get(&url);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, expected, "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{what}: {body}"
        );
        assert!(body.get("results").is_none(), "{what} returned data");
        if expected == 401 {
            assert!(www.unwrap().starts_with("Bearer "), "{what}");
        }
    }

    // Health and docs need no token.
    assert_eq!(
        http.get(format!("{}/api/v1/healthcheck/ping", running.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{}/api/v1/openapi.json", running.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn correlation_id_is_echoed_or_generated() {
    let s = provisioned(false).await;
    let (c, _api) = client(&s, hs256_auth()).await;
    let r = c
        .http
        .get(format!("{}/api/v1/activityhistory?targetId=bad", c.base))
        .bearer_auth(&c.token)
        .header("x-correlation-id", "support-ticket-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"], "support-ticket-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["correlationId"], "support-ticket-42");
    let r = c
        .http
        .get(format!("{}/api/v1/healthcheck/ping", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-correlation-id"].len(), 36);
}

#[tokio::test]
async fn oversized_query_strings_and_headers_are_refused_without_data_or_a_5xx() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    seed_thirty(&s, target).await;
    let (c, _api) = client(&s, hs256_auth()).await;
    let long = "x".repeat(20_000);
    let r = c
        .http
        .get(format!(
            "{}/api/v1/activityhistory?targetId={target}&pad={long}",
            c.base
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 414);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("results").is_none());

    let r = c
        .http
        .get(format!(
            "{}/api/v1/activityhistory?targetId={target}",
            c.base
        ))
        .bearer_auth(&c.token)
        .header("x-padding", "y".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);

    // A token of absurd size is refused as a token, not a crash.
    let r = c
        .http
        .get(format!(
            "{}/api/v1/activityhistory?targetId={target}",
            c.base
        ))
        .bearer_auth("a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
