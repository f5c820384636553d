//! Helpers for the integration tests: the local AWS stack and SDK clients.
//!
//! When no endpoint is configured (`AWS_ENDPOINT_URL` or the per-service
//! variables), the first test to ask starts DynamoDB Local and moto server on free
//! loopback ports, installing them into `~/.cache/activity-history/` on first use
//! ([`tools`], which also finds or installs a browser for the page tests). One
//! pair serves the whole test binary. They are
//! started from a thread that lives as long as the test process and with
//! `setpriv --pdeathsig KILL`, so they die with the tests even when a test panics
//! or the run is interrupted. Every test names its own table, topics and queues,
//! so tests run in parallel against the one pair.
//!
//! - [`table`]: a fresh table and nothing else, and the API over it.
//! - [`proxy`]: a TCP fault proxy (slow or cut) between a client and an emulator.
//! - [`tools`]: the emulators, Python tools and a browser, found or installed.
//! - [`runtime_api`]: a Lambda Runtime API on loopback, to run the listener as a
//!   real Lambda process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tokio::sync::OnceCell;

pub mod proxy;
pub mod table;
pub mod tools;

pub use tools::{browser, browser_tools, openapi_validator};

/// Where the emulators listen.
#[derive(Debug, Clone)]
pub struct Stack {
    /// DynamoDB Local's URL.
    pub dynamodb: String,
    /// moto server's URL (SNS and SQS).
    pub moto: String,
}

static STACK: OnceCell<Stack> = OnceCell::const_new();

/// The region every test client uses.
pub const REGION: &str = "eu-west-2";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn configured(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// The stack for this test binary: the configured endpoints, or emulators started now.
pub async fn stack() -> &'static Stack {
    match STACK.get_or_try_init(init).await {
        Ok(s) => s,
        // A test cannot do anything useful without the stack; say why in the failure.
        Err(e) => panic!("local AWS stack unavailable: {e:#}"),
    }
}

async fn init() -> Result<Stack> {
    let general = configured("AWS_ENDPOINT_URL");
    let ddb = configured("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| general.clone());
    let moto = configured("AWS_ENDPOINT_URL_SQS").or(general);
    let stack = match (ddb, moto) {
        (Some(dynamodb), Some(moto)) => Stack { dynamodb, moto },
        _ => tokio::task::spawn_blocking(start_emulators).await??,
    };
    wait_healthy(&stack).await?;
    Ok(stack)
}

fn start_emulators() -> Result<Stack> {
    let installed = tools::installed()?.clone();
    let (ddb_port, moto_port) = (free_port()?, free_port()?);
    let logs = std::env::temp_dir().join(format!("activity-history-it-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let (tx, rx) = mpsc::channel::<Result<()>>();
    let spawn_logs = logs.clone();
    // The parent-death signal fires when the *thread* that spawned the child ends,
    // so the children are spawned from a thread that never ends.
    std::thread::Builder::new()
        .name("emulators".into())
        .spawn(move || {
            let _ = tx.send(spawn_emulators(
                &installed,
                ddb_port,
                moto_port,
                &spawn_logs,
            ));
            loop {
                std::thread::park();
            }
        })?;
    rx.recv()??;
    eprintln!(
        "local AWS stack: DynamoDB Local on {ddb_port}, moto on {moto_port}, logs in {}",
        logs.display()
    );
    Ok(Stack {
        dynamodb: format!("http://127.0.0.1:{ddb_port}"),
        moto: format!("http://127.0.0.1:{moto_port}"),
    })
}

/// Starts both emulators under `setpriv --pdeathsig KILL`, so they die with the
/// thread that calls this.
fn spawn_emulators(
    installed: &tools::Installed,
    ddb_port: u16,
    moto_port: u16,
    logs: &std::path::Path,
) -> Result<()> {
    let log = |name: &str| std::fs::File::create(logs.join(name));
    let ddb_dir = &installed.dynamodb_local;
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "java"])
        .arg(format!(
            "-Djava.library.path={}",
            ddb_dir.join("DynamoDBLocal_lib").display()
        ))
        .args(["-Xmx1g", "-jar"])
        .arg(ddb_dir.join("DynamoDBLocal.jar"))
        .args(["-inMemory", "-sharedDb", "-disableTelemetry", "-port"])
        .arg(ddb_port.to_string())
        .current_dir(ddb_dir)
        .stdin(Stdio::null())
        .stdout(log("dynamodb.log")?)
        .stderr(log("dynamodb.err")?)
        .spawn()
        .context("starting DynamoDB Local (needs java and setpriv from util-linux)")?;
    Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--"])
        .arg(&installed.moto_server)
        .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log("moto.log")?)
        .stderr(log("moto.err")?)
        .spawn()
        .context("starting moto server")?;
    Ok(())
}

async fn wait_healthy(stack: &Stack) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let ddb = dynamodb(stack);
    let sqs = sqs(stack);
    loop {
        let d = ddb.list_tables().limit(1).send().await;
        let s = sqs.list_queues().send().await;
        if d.is_ok() && s.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "emulators did not answer within 90 s (DynamoDB: {:?}; SQS: {:?})",
                d.err()
                    .map(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
                s.err()
                    .map(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Shared SDK configuration: fake credentials and a fixed region, so the SDK never
/// looks for either anywhere but here (and never at the EC2 metadata address);
/// the HTTP client and settings the service ships with ([`sdk_http`]).
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_with(endpoint, Some(sdk_http::Client::shared()))
        .stalled_stream_protection(sdk_http::stalled_stream_protection())
        .build()
}

/// [`sdk_config`]'s settings with another HTTP client (`None`: the SDK's
/// default), to build on (benchmarks).
pub fn sdk_config_with(
    endpoint: &str,
    http: Option<aws_sdk_dynamodb::config::SharedHttpClient>,
) -> aws_types::sdk_config::Builder {
    let mut b = aws_config::SdkConfig::builder();
    b.set_http_client(http);
    b.behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "static"),
        ))
        .endpoint_url(endpoint)
}

/// A DynamoDB client for the stack.
pub fn dynamodb(stack: &Stack) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config(&stack.dynamodb))
}

/// An SQS client for the stack.
pub fn sqs(stack: &Stack) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config(&stack.moto))
}

/// An SNS client for the stack.
pub fn sns(stack: &Stack) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&sdk_config(&stack.moto))
}

/// A name no other test uses, for tables, topics and queues.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A provisioned stack of this test's own: table, topics, queue and DLQ.
pub struct TestStack {
    /// Table client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Queue client.
    pub sqs: aws_sdk_sqs::Client,
    /// Topic client.
    pub sns: aws_sdk_sns::Client,
    /// What was created.
    pub provisioned: listener::provision::Provisioned,
    /// Where the emulators are.
    pub stack: &'static Stack,
}

/// Provisions a fresh table, topics and queues (FIFO or standard) for one test.
pub async fn provisioned(fifo: bool) -> TestStack {
    let stack = stack().await;
    let (dynamodb, sqs, sns) = (dynamodb(stack), sqs(stack), sns(stack));
    let spec = listener::provision::Spec {
        table: unique("ActivityHistory"),
        prefix: format!("{}-", unique("t")),
        fifo,
    };
    let provisioned = listener::provision::provision(&dynamodb, &sns, &sqs, &spec)
        .await
        .unwrap_or_else(|e| panic!("provisioning failed: {e:#}"));
    TestStack {
        dynamodb,
        sqs,
        sns,
        provisioned,
        stack,
    }
}

impl TestStack {
    /// A processor writing to this stack's table with the given mapping.
    pub fn processor(&self, mapping: domain::Mapping) -> listener::handler::Processor {
        listener::handler::Processor {
            dynamodb: self.dynamodb.clone(),
            table: self.provisioned.table.clone(),
            mapping: std::sync::Arc::new(mapping),
            metrics: std::sync::Arc::default(),
            ingest_key: Some(ingest_key()),
        }
    }

    /// Worker settings for tests: short polls, failed messages retried at once.
    pub fn worker_config(&self) -> listener::worker::WorkerConfig {
        listener::worker::WorkerConfig {
            wait_secs: 1,
            retry_delay_secs: 0,
            store_retry_secs: 2,
            visibility_secs: 5,
            ..listener::worker::WorkerConfig::new(self.provisioned.queue_url.clone())
        }
    }

    /// Every activity on a target, decoded.
    pub async fn activities(&self, target: uuid::Uuid) -> Vec<domain::Activity> {
        let out = self
            .dynamodb
            .query()
            .table_name(&self.provisioned.table)
            .key_condition_expression("targetId = :t")
            .expression_attribute_values(
                ":t",
                aws_sdk_dynamodb::types::AttributeValue::S(target.to_string()),
            )
            .send()
            .await
            .expect("query");
        out.items()
            .iter()
            .map(|i| domain::item::from_item(i.clone()).expect("item decodes"))
            .collect()
    }

    /// Every item in the table (tests keep tables small).
    pub async fn item_count(&self) -> usize {
        let mut n = 0;
        let mut start = None;
        loop {
            let out = self
                .dynamodb
                .scan()
                .table_name(&self.provisioned.table)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            n += out.count() as usize;
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return n;
            }
        }
    }

    /// Bodies of the messages in a queue, read without consuming them for long
    /// (each is made visible again at once).
    pub async fn peek_bodies(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        for _ in 0..5 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await
                .expect("receive");
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                bodies.push(m.body().unwrap_or_default().to_owned());
            }
        }
        bodies
    }

    /// Approximate message count of a queue (visible plus in flight).
    pub async fn queue_depth(&self, queue_url: &str) -> u64 {
        let (visible, in_flight) = self.visible_and_in_flight(queue_url).await;
        visible + in_flight
    }

    /// Messages of a queue waiting to be received, and received but not deleted.
    pub async fn visible_and_in_flight(&self, queue_url: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let n = |k: A| {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            n(A::ApproximateNumberOfMessages),
            n(A::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

/// A change event as a .NET publisher writes it (one definition for every crate).
pub use domain::sample::event;

impl TestStack {
    /// The listener program with a clean environment pointing at this stack:
    /// fake credentials, no metadata lookups, this test's table and queue.
    /// `bin` is the program's path, `env!("CARGO_BIN_EXE_it-listener")` in a test.
    pub fn listener_command(&self, bin: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &self.stack.dynamodb)
            .env("AWS_ENDPOINT_URL_SQS", &self.stack.moto)
            .env("AWS_ENDPOINT_URL_SNS", &self.stack.moto)
            .env("ACTIVITY_TABLE", &self.provisioned.table)
            .env("ACTIVITY_QUEUE_URL", &self.provisioned.queue_url)
            .env("ACTIVITY_INGEST_KEY", INGEST_KEY)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }
}

/// The key test APIs sign posted activities with and test listeners check.
pub const INGEST_KEY: &str = "a-test-ingest-key-of-32-bytes-or-more";

/// [`INGEST_KEY`] as a key.
pub fn ingest_key() -> domain::posted::IngestKey {
    domain::posted::IngestKey::new(INGEST_KEY.as_bytes()).expect("ingest key")
}

/// The HS256 secret test APIs trust.
pub const JWT_SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";
/// The page-token key test APIs use.
pub const TOKEN_KEY: &str = "test-page-token-key-0123456789";

/// The path of a file under `tests/fixtures`.
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// Authentication with the test HS256 secret only.
pub fn hs256_auth() -> api::auth::AuthConfig {
    api::auth::AuthConfig {
        hs256_secret: Some(JWT_SECRET.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A valid HS256 token for the test secret with the given extra claims.
pub fn hs256_token(extra: serde_json::Value) -> String {
    sign(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        None,
        extra,
    )
}

/// Signs claims (`sub`, `iat`, `nbf`, `exp` in an hour, merged with `extra`).
pub fn sign(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    kid: Option<&str>,
    extra: serde_json::Value,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": "tester", "name": "Test User", "email": "tester@example.gov.uk",
        "groups": ["housing-staff"], "iat": now, "nbf": now, "exp": now + 3600,
    });
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

/// A small Lambda Runtime API served on loopback, so the listener can run in
/// Lambda mode as a real process (the `lambda_runtime` crate speaks HTTP to
/// `AWS_LAMBDA_RUNTIME_API`).
pub mod runtime_api {
    use std::sync::Arc;
    use std::time::Instant;

    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, HeaderValue};
    use axum::routing::{get, post};
    use serde_json::Value;
    use tokio::sync::{Mutex, mpsc, watch};

    /// What the function answered to one invocation.
    #[derive(Debug)]
    pub struct Answer {
        /// `response` or `error`.
        pub kind: &'static str,
        /// The JSON it sent.
        pub body: Value,
    }

    #[derive(Clone)]
    struct Shared {
        events: Arc<Mutex<mpsc::Receiver<Value>>>,
        answers: mpsc::Sender<Answer>,
        first_poll: watch::Sender<Option<Instant>>,
    }

    /// The running API: queue invocations, read answers.
    pub struct RuntimeApi {
        /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
        pub addr: String,
        /// Invocations to hand out, in order.
        pub events: mpsc::Sender<Value>,
        /// The function's answers, in order.
        pub answers: mpsc::Receiver<Answer>,
        /// When the function first asked for work (its cold start ends there).
        pub first_poll: watch::Receiver<Option<Instant>>,
    }

    async fn next(State(s): State<Shared>) -> (HeaderMap, String) {
        s.first_poll.send_if_modified(|t| {
            if t.is_none() {
                *t = Some(Instant::now());
                true
            } else {
                false
            }
        });
        let event = s.events.lock().await.recv().await.unwrap_or(Value::Null);
        let mut h = HeaderMap::new();
        let id = uuid::Uuid::new_v4().to_string();
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 60_000)
            .unwrap_or(0);
        for (k, v) in [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:eu-west-2:123456789012:function:activity-listener".to_owned(),
            ),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        (h, event.to_string())
    }

    async fn answer(State(s): State<Shared>, kind: &'static str, body: String) -> &'static str {
        let body = serde_json::from_str(&body).unwrap_or(Value::Null);
        let _ = s.answers.send(Answer { kind, body }).await;
        "{}"
    }

    /// Starts the API on a free loopback port.
    pub async fn start() -> RuntimeApi {
        let (event_tx, event_rx) = mpsc::channel(16);
        let (answer_tx, answer_rx) = mpsc::channel(16);
        let (first_tx, first_rx) = watch::channel(None);
        let shared = Shared {
            events: Arc::new(Mutex::new(event_rx)),
            answers: answer_tx,
            first_poll: first_tx,
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(|s: State<Shared>, _: Path<String>, b: String| answer(s, "response", b)),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(|s: State<Shared>, _: Path<String>, b: String| answer(s, "error", b)),
            )
            .with_state(shared);
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr").to_string();
        tokio::spawn(async move { axum::serve(socket, app).await });
        RuntimeApi {
            addr,
            events: event_tx,
            answers: answer_rx,
            first_poll: first_rx,
        }
    }

    /// Lambda's view of SQS messages: one record per body.
    pub fn sqs_event(bodies: &[(String, String)]) -> Value {
        let records: Vec<Value> = bodies
            .iter()
            .map(|(id, body)| {
                serde_json::json!({
                    "messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                    "attributes": { "ApproximateReceiveCount": "1", "SentTimestamp": "1709285400000",
                                    "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1709285400001" },
                    "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:eu-west-2:123456789012:activity-history", "awsRegion": "eu-west-2"
                })
            })
            .collect();
        serde_json::json!({ "Records": records })
    }
}

impl TestStack {
    /// The listener as a Lambda function served by `api`.
    pub fn lambda_command(
        &self,
        bin: &str,
        api: &runtime_api::RuntimeApi,
    ) -> tokio::process::Command {
        let mut c = self.listener_command(bin);
        c.env("AWS_LAMBDA_RUNTIME_API", &api.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "activity-listener")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/activity-listener");
        c
    }
}

impl TestStack {
    /// Sends up to ten bodies to a queue in one call.
    pub async fn send_batch(&self, queue_url: &str, bodies: &[String]) {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
                    .expect("entry")
            })
            .collect();
        self.sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send_message_batch");
    }
}
