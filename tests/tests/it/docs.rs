//! The API's OpenAPI document, its docs page in a real browser, and its Lambda entry.

use std::process::Command;

use integration_tests::table::table_only;
use integration_tests::{hs256_auth, hs256_token, openapi_validator};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

#[tokio::test]
async fn openapi_document_is_valid_openapi_3_1_and_lists_every_route() {
    let s = table_only().await;
    let api = s.serve_api(hs256_auth()).await;
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", api.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/api/v1/activityhistory",
        "/api/v1/activityhistory/{id}",
        "/api/v1/activityhistory/export",
        "/api/v1/activityhistory/state",
        "/api/v1/healthcheck/ping",
    ] {
        assert!(paths.contains(&route), "{route} missing from {paths:?}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let list = &doc["paths"]["/api/v1/activityhistory"]["get"];
    let params: Vec<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "targetId",
        "pageSize",
        "paginationToken",
        "type",
        "from",
        "to",
        "order",
        "field",
        "author",
        "domain",
        "targetType",
    ] {
        assert!(params.contains(&p), "{p} missing from {params:?}");
    }
    for code in ["200", "400", "401", "403", "404"] {
        assert!(
            list["responses"].get(code).is_some(),
            "list lacks a {code} response"
        );
    }
    let post = &doc["paths"]["/api/v1/activityhistory"]["post"];
    for code in ["202", "400", "401", "403", "405", "413", "415", "503"] {
        assert!(
            post["responses"].get(code).is_some(),
            "the post lacks a {code} response"
        );
    }
    let body = &post["requestBody"]["content"]["application/json"]["schema"];
    assert!(!body.is_null(), "the post documents no body: {post}");

    let file = std::env::temp_dir().join(format!("openapi-{}.json", Uuid::new_v4()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = Command::new(openapi_validator().unwrap())
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn docs_page_renders_in_headless_chromium_with_only_loopback_reachable() {
    let chromium = integration_tests::browser().unwrap_or_else(|e| panic!("{e:#}"));
    let s = table_only().await;
    let api = s.serve_api(hs256_auth()).await;
    let profile = std::env::temp_dir().join(format!("chromium-{}", Uuid::new_v4()));
    let out = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Every host name resolves to nothing but loopback: a page that fetched
            // its assets from the internet would render empty.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("{}/docs/", api.base))
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    std::fs::remove_dir_all(&profile).ok();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("swagger-ui"),
        "no Swagger UI in the page:\n{dom}"
    );
    // Swagger UI renders one block per operation once its script ran and the
    // document loaded from /api/v1/openapi.json.
    assert!(
        dom.contains("opblock"),
        "operations were not rendered:\n{}",
        &dom[..dom.len().min(3000)]
    );
    assert!(dom.contains("/api/v1/activityhistory/export"));
}

#[tokio::test]
async fn lambda_entry_answers_an_api_gateway_v2_request() {
    let s = table_only().await;
    let target = Uuid::parse_str("4d5e6f70-8192-4a3b-9c4d-5e6f70819203").unwrap();
    let body = integration_tests::event(
        "TenureCreatedEvent",
        target,
        Value::Null,
        json!({"status": "active"}),
    );
    let domain::Outcome::Record(r) =
        domain::transform(body.to_string().as_bytes(), &domain::Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    s.put_items(vec![domain::item::to_item(&r[0]).unwrap()])
        .await;

    let mut fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(integration_tests::fixture("lambda/apigw-v2-history.json"))
            .unwrap(),
    )
    .unwrap();
    fixture["headers"]["authorization"] = json!(format!("Bearer {}", hs256_token(json!({}))));
    let request = lambda_http::request::from_str(&fixture.to_string()).unwrap();

    let settings = api::HttpSettings {
        cors_origins: vec![],
        token_cookie: None,
        request_timeout: std::time::Duration::from_secs(10),
        header_read_timeout: std::time::Duration::from_secs(10),
    };
    let service = api::lambda_service(s.api_state(hs256_auth()).await, &settings);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-correlation-id"], "apigw-fixture-1");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(page["results"][0]["targetId"], json!(target.to_string()));
    assert_eq!(page["results"][0]["newData"], json!({"status": "active"}));
    assert!(page["paginationDetails"]["nextToken"].is_null());
}
