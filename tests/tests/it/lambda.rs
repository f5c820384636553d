//! The listener as a real Lambda process, served by a small Runtime API in the
//! test (the `lambda_runtime` crate speaks HTTP to `AWS_LAMBDA_RUNTIME_API`).

use std::process::Stdio;
use std::time::Duration;

use integration_tests::runtime_api::{self, sqs_event};
use integration_tests::{event, provisioned};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn lambda_runner_reports_exactly_the_failed_messages() {
    let s = provisioned(false).await;
    let mut api = runtime_api::start().await;
    let child = s
        .lambda_command(crate::LISTENER, &api)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Values no log line may carry, in any encoding that keeps them readable.
    let (old_secret, new_secret) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
    let good = event(
        "PersonUpdatedEvent",
        Uuid::new_v4(),
        json!({"a": old_secret}),
        json!({"a": new_secret}),
    );
    let ignored = event(
        "ContactDetailEditedEvent",
        Uuid::new_v4(),
        json!({}),
        json!({}),
    );
    let unmapped = event("WidgetFrobbedEvent", Uuid::new_v4(), json!({}), json!({}));
    let invocation = sqs_event(&[
        ("good-1".into(), good.to_string()),
        ("bad-1".into(), "this is not json".into()),
        ("ignored-1".into(), ignored.to_string()),
        ("unmapped-1".into(), unmapped.to_string()),
    ]);
    api.events.send(invocation).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(60), api.answers.recv())
        .await
        .expect("the function answered within 60 s")
        .unwrap();
    assert_eq!(answer.kind, "response", "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "batchItemFailures": [ { "itemIdentifier": "bad-1" }, { "itemIdentifier": "unmapped-1" } ] })
    );
    let target = Uuid::parse_str(good["entityId"].as_str().unwrap()).unwrap();
    assert_eq!(s.activities(target).await.len(), 1);

    let mut child = child;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let emf: Value = stdout
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("_aws").is_some())
        })
        .expect("an Embedded Metric Format line on stdout");
    assert_eq!(
        (
            emf["recorded"].as_u64(),
            emf["malformed"].as_u64(),
            emf["unmapped"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("paul.fox@example.gov.uk"),
        "no e-mail addresses in logs"
    );
    assert!(
        !stderr.contains(&old_secret) && !stderr.contains(&new_secret),
        "no event data in logs:\n{stderr}"
    );
    // A success has no line of its own: its batch's line names it.
    let batch = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "batch processed")
        .expect("a batch processed line");
    let named = |field: &str, id: &serde_json::Value| {
        let list = batch["fields"][field].as_str().unwrap_or_default();
        list.split(',').any(|i| Some(i) == id.as_str())
    };
    assert!(
        named("event_ids", &good["id"]),
        "the event id is in the batch's line: {batch}"
    );
    assert!(
        named("correlation_ids", &good["correlationId"]),
        "the correlation id is in the batch's line: {batch}"
    );
}
