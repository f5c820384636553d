//! Activities posted over HTTP go through the queue, and the real listener
//! records them with the ids, times, types and authors they were posted with.

use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use integration_tests::table::{App, call, get};
use integration_tests::{TestStack, hs256_token, provisioned};
use serde_json::{Value, json};
use uuid::Uuid;

const WRITERS: &str = "history-writers";

async fn post(app: &App, token: &str, body: impl Into<String>) -> (u16, Value) {
    let req = Request::post("/api/v1/activityhistory")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.into()))
        .unwrap();
    call(app, req).await
}

async fn history(app: &App, token: &str, target: Uuid) -> (u16, Value) {
    get(
        app,
        token,
        &format!("/api/v1/activityhistory?targetId={target}"),
    )
    .await
}

fn worker(s: &TestStack) -> tokio::process::Child {
    s.listener_command(crate::LISTENER)
        .args(["poll", "--wait-secs", "1", "--retry-delay-secs", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `target` has `n` records, and fails if it gets more.
async fn wait_for_records(s: &TestStack, target: Uuid, n: usize) -> Vec<domain::Activity> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = s.activities(target).await;
        assert!(
            found.len() <= n,
            "{} records on {target}, expected {n}",
            found.len()
        );
        if found.len() == n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} records on {target}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn author() -> Value {
    json!({ "fullName": "Migration Team", "email": "Migration@Example.gov.uk" })
}

/// Two activities on a tenure and one on a person.
fn three(tenure: Uuid, person: Uuid) -> Value {
    json!([
        { "id": Uuid::new_v4(), "type": "migrate", "targetType": "tenure", "targetId": tenure,
          "createdAt": "2021-02-19T15:12:00Z", "timetoLiveForRecord": 36500,
          "newData": { "paymentReference": "228000123", "tenureType": "Secure" },
          "authorDetails": author() },
        { "id": Uuid::new_v4(), "type": "update", "targetType": "tenure", "targetId": tenure,
          "createdAt": "2021-03-01T09:30:00.1234567Z",
          "oldData": { "paymentReference": "228000123", "tenureType": "Secure" },
          "newData": { "paymentReference": "228000123", "tenureType": "Introductory" },
          "authorDetails": author() },
        { "id": Uuid::new_v4(), "type": "create", "targetType": "person", "targetId": person,
          "createdAt": "2021-02-19T15:13:00Z", "newData": { "firstName": "Susan" },
          "authorDetails": author() }
    ])
}

#[tokio::test]
async fn posted_activities_are_recorded_once_with_the_ids_they_were_given() {
    let s = provisioned(true).await;
    let app = s.api_app(Some(&[WRITERS])).await;
    let _worker = worker(&s);
    let writer = hs256_token(json!({ "groups": ["housing-staff", WRITERS] }));
    let (tenure, person) = (Uuid::new_v4(), Uuid::new_v4());
    let items = three(tenure, person);

    let (status, body) = post(&app, &writer, items.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let results = body["results"].as_array().unwrap();
    for (posted, result) in items.as_array().unwrap().iter().zip(results) {
        assert_eq!(result["id"], posted["id"]);
        assert_eq!(result["targetId"], posted["targetId"]);
        let url = result["url"].as_str().unwrap();
        assert!(
            url.ends_with(&format!(
                "/api/v1/activityhistory/{}",
                posted["id"].as_str().unwrap()
            )),
            "{url}"
        );
    }

    let on_tenure = wait_for_records(&s, tenure, 2).await;
    wait_for_records(&s, person, 1).await;
    let (status, page) = history(&app, &writer, tenure).await;
    assert_eq!(status, 200, "{page}");
    let shown = page["results"].as_array().unwrap();
    assert_eq!(shown[0]["id"], items[1]["id"], "newest first");
    assert_eq!(shown[0]["type"], "update");
    assert_eq!(shown[0]["createdAt"], "2021-03-01T09:30:00.1234567Z");
    assert_eq!(
        shown[0]["oldData"],
        json!({ "tenureType": "Secure" }),
        "only what changed"
    );
    assert_eq!(shown[0]["newData"], json!({ "tenureType": "Introductory" }));
    assert_eq!(shown[0]["authorDetails"], author());
    assert_eq!(shown[1]["id"], items[0]["id"]);
    assert_eq!(shown[1]["type"], "migrate");
    let migrated = on_tenure
        .iter()
        .find(|a| a.id.to_string() == items[0]["id"])
        .unwrap();
    let created = domain::Timestamp::parse("2021-02-19T15:12:00Z").unwrap();
    assert_eq!(migrated.ttl, Some(created.plus_days(36500).unix_seconds()));

    assert_eq!(shown[1]["createdAt"], "2021-02-19T15:12:00.0000000Z");
    assert_eq!(shown[1]["authorDetails"], author());
    let prov = migrated.provenance.as_ref().unwrap();
    assert_eq!(
        prov.source_system, "ActivityHistoryAPI (tester)",
        "who posted it"
    );
    let on_person = s.activities(person).await;
    assert_eq!(on_person[0].activity_type, domain::ActivityType::Create);
    assert_eq!(
        on_person[0].created_at.to_table_string(),
        "2021-02-19T15:13:00.0000000Z"
    );
    assert_eq!(on_person[0].author.full_name, "Migration Team");

    // The same three again; then the same id with other content, refused.
    let (status, _) = post(&app, &writer, items.to_string()).await;
    assert_eq!(status, 202, "a repeat is accepted and records nothing new");
    let mut changed = items[2].clone();
    changed["newData"]["firstName"] = json!("Sue");
    let (status, body) = post(&app, &writer, changed.to_string()).await;
    assert_eq!(status, 409, "{body}");
    // One more on each target, a single object: once each is recorded, the
    // repeat (queued before it in the same FIFO group) is behind us.
    for (target, n) in [(tenure, 3), (person, 2)] {
        let mut single = items[1].clone();
        (single["id"], single["targetId"]) = (json!(Uuid::new_v4()), json!(target));
        single["createdAt"] = json!("2021-04-01T08:00:00Z");
        if target == person {
            single["targetType"] = json!("person");
        }
        let (status, body) = post(&app, &writer, single.to_string()).await;
        assert_eq!(status, 202, "a single object: {body}");
        assert_eq!(body["results"][0]["id"], single["id"]);
        wait_for_records(&s, target, n).await;
    }
    assert_eq!(
        s.queue_depth(&s.provisioned.dlq_url).await,
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn a_posted_message_delivered_twice_past_the_queues_deduplication_is_recorded_once() {
    let s = provisioned(true).await;
    let _worker = worker(&s);
    let target = Uuid::new_v4();
    let activity = three(target, Uuid::new_v4())[0].clone();
    let posted =
        domain::PostedActivity::from_value(activity, None, domain::Timestamp::now()).unwrap();
    let body = posted.to_message(
        &posted.digest(),
        &domain::posted::Posting::default(),
        &integration_tests::ingest_key(),
    );
    for _ in 0..2 {
        // Another deduplication id each time: the queue lets both through.
        s.sqs
            .send_message()
            .queue_url(&s.provisioned.queue_url)
            .message_body(&body)
            .message_group_id(target.to_string())
            .message_deduplication_id(Uuid::new_v4().to_string())
            .send()
            .await
            .unwrap();
    }
    let recorded = wait_for_records(&s, target, 1).await;
    assert_eq!(recorded[0].id, posted.id);
    // Both delivered and settled: the queue is empty, nothing dead-lettered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.visible_and_in_flight(&s.provisioned.queue_url).await != (0, 0) {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.activities(target).await.len(), 1);
    assert_eq!(s.queue_depth(&s.provisioned.dlq_url).await, 0);
}

#[tokio::test]
async fn a_refused_post_records_nothing() {
    let s = provisioned(true).await;
    let app = s.api_app(Some(&[WRITERS])).await;
    let _worker = worker(&s);
    let writer = hs256_token(json!({ "groups": ["housing-staff", WRITERS] }));
    let reader = hs256_token(json!({ "groups": ["housing-staff"] }));
    let (tenure, person) = (Uuid::new_v4(), Uuid::new_v4());

    let (status, body) = post(&app, &reader, three(tenure, person).to_string()).await;
    assert_eq!(status, 403, "a reader: {body}");
    for (field, value, named) in [
        ("type", json!("edit"), "item 2: field `type`"),
        (
            "targetId",
            json!("12345"),
            "item 2: field `targetId` is not a GUID",
        ),
        (
            "authorDetails",
            Value::Null,
            "item 2: required field `authorDetails`",
        ),
    ] {
        let mut items = three(tenure, person);
        items[2][field] = value;
        let (status, body) = post(&app, &writer, items.to_string()).await;
        assert_eq!(status, 400, "{field}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    let (status, body) = post(&app, &writer, "{ not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );

    let read_only = s.api_app(None).await;
    let (status, body) = post(&read_only, &writer, three(tenure, person).to_string()).await;
    assert_eq!(status, 405, "{body}");

    // A post after the refused ones, on the same targets: once it is recorded,
    // anything the refused ones had queued would have been recorded before it.
    let mut last = three(tenure, person)[0].clone();
    last["createdAt"] = json!("2022-01-01T00:00:00Z");
    let (status, _) = post(&app, &writer, last.to_string()).await;
    assert_eq!(status, 202);
    let recorded = wait_for_records(&s, tenure, 1).await;
    assert_eq!(recorded[0].id.to_string(), last["id"]);
    assert!(s.activities(person).await.is_empty());
}
