//! The listener as a real Lambda process, served by a small Runtime API in the
//! test (the `lambda_runtime` crate speaks HTTP to `AWS_LAMBDA_RUNTIME_API`).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use integration_tests::{event, provisioned};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

#[derive(Clone)]
struct RuntimeApi {
    /// Invocations waiting to be handed out.
    events: Arc<Mutex<mpsc::Receiver<Value>>>,
    /// What the function answered: (request id, "response" or "error", body).
    answers: mpsc::Sender<(String, &'static str, Value)>,
}

async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let event = api.events.lock().await.recv().await.unwrap_or(Value::Null);
    let mut h = HeaderMap::new();
    let id = Uuid::new_v4().to_string();
    h.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    h.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    h.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static(
            "arn:aws:lambda:eu-west-2:123456789012:function:activity-listener",
        ),
    );
    (h, event.to_string())
}

async fn response(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    let _ = api
        .answers
        .send((
            id,
            "response",
            serde_json::from_str(&body).unwrap_or(Value::Null),
        ))
        .await;
    "{}"
}

async fn error(
    State(api): State<RuntimeApi>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    let _ = api
        .answers
        .send((
            id,
            "error",
            serde_json::from_str(&body).unwrap_or(Value::Null),
        ))
        .await;
    "{}"
}

fn sqs_record(message_id: &str, body: String) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("handle-{message_id}"),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1709285400000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1709285400001"
        },
        "messageAttributes": {},
        "md5OfBody": "0",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:activity-history",
        "awsRegion": "eu-west-2"
    })
}

#[tokio::test]
async fn lambda_runner_reports_exactly_the_failed_messages() {
    let s = provisioned(false).await;
    let (event_tx, event_rx) = mpsc::channel(4);
    let (answer_tx, mut answer_rx) = mpsc::channel(4);
    let api = RuntimeApi {
        events: Arc::new(Mutex::new(event_rx)),
        answers: answer_tx,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .with_state(api);
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(socket, app).await });

    let mut child = s
        .listener_command(crate::LISTENER)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "activity-listener")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/activity-listener")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let good = event(
        "PersonUpdatedEvent",
        Uuid::new_v4(),
        json!({"a": 1}),
        json!({"a": 2}),
    );
    let ignored = event(
        "ContactDetailEditedEvent",
        Uuid::new_v4(),
        json!({}),
        json!({}),
    );
    let unmapped = event("WidgetFrobbedEvent", Uuid::new_v4(), json!({}), json!({}));
    let invocation = json!({ "Records": [
        sqs_record("good-1", good.to_string()),
        sqs_record("bad-1", "this is not json".into()),
        sqs_record("ignored-1", ignored.to_string()),
        sqs_record("unmapped-1", unmapped.to_string()),
    ]});
    event_tx.send(invocation).await.unwrap();
    let (_, kind, body) = tokio::time::timeout(Duration::from_secs(60), answer_rx.recv())
        .await
        .expect("the function answered within 60 s")
        .unwrap();
    assert_eq!(kind, "response", "{body}");
    assert_eq!(
        body,
        json!({ "batchItemFailures": [ { "itemIdentifier": "bad-1" }, { "itemIdentifier": "unmapped-1" } ] })
    );
    let target = Uuid::parse_str(good["entityId"].as_str().unwrap()).unwrap();
    assert_eq!(s.activities(target).await.len(), 1);

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
}
