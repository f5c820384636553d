//! System benchmarks against the local stack, each beside a baseline measured in
//! the same run. `cargo bench -p integration-tests --bench system` runs them all;
//! name `floor`, `listener`, `api`, `reading` or `lambda` after `--` to run one. Prints Markdown for
//! BENCHMARKS.md.
//!
//! - floor: one AWS request, from SigV4 alone to the SDK as shipped (`system/floor.rs`).
//! - listener: 2,000 events (`BENCH_EVENTS`) drained through a keep-alive front for
//!   moto by the worker at concurrency 1 and 4, and by a plain boto3 consumer
//!   (`system/boto3_consumer.py`); CPU per event from the consumer's own /proc
//!   stat; DynamoDB requests per event from the worker's logs. Baselines: the
//!   worker built from an earlier commit (`BENCH_BASELINE_BIN`), the same worker
//!   draining events of a type that records nothing, the boto3 consumer, and
//!   floor (b) per request made.
//! - api: a target with 1,000 activities, pageSize 10 and 100, 8 clients; latency,
//!   requests/s, the API's CPU per request and peak RSS. Baselines: the API built
//!   from an earlier commit (`BENCH_BASELINE_BIN`), and the same DynamoDB queries
//!   issued directly through the SDK.
//! - reading: 10 targets of 100 activities; a merged page of 10 over all 10 and
//!   a state request, each with its DynamoDB queries per answer (from the API's
//!   logs), latency and API CPU. Baseline: one target's page of 10, same run.
//! - lambda: binary sizes, cold start to first poll of a local Runtime API, CPU
//!   per event of a warm function and RSS after 1,100 messages, beside the
//!   function built from an earlier commit (`BENCH_BASELINE_BIN`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::runtime_api::{self, sqs_event};
use integration_tests::{event, hs256_token, provisioned};
use serde_json::json;
use uuid::Uuid;

#[path = "system/floor.rs"]
mod floor;

const LISTENER: &str = env!("CARGO_BIN_EXE_it-listener");
const API: &str = env!("CARGO_BIN_EXE_it-api");

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after ')'.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (current RSS, peak RSS) in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Drain {
    secs: f64,
    cpu_us_per_event: f64,
    writes_per_event: f64,
    /// BatchGetItem requests per event: the append-only check.
    reads_per_event: f64,
    /// Write and read capacity units per event, as DynamoDB reported them.
    wcu_per_event: f64,
    messages_per_batch: f64,
}

/// A loopback HTTP/1.1 front for `upstream` that keeps client connections open.
/// moto's server (Werkzeug) closes the connection after every response, so a
/// client of moto pays a TCP connect and a new HTTP connection per SQS request;
/// SQS itself keeps connections alive. Through this front the worker sees SQS's
/// connection behaviour; the front's own CPU is in the bench process, not the
/// worker's. Returns `http://127.0.0.1:PORT`.
async fn keep_alive_front(upstream: String) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut headers = parts.headers.clone();
            headers.remove(reqwest::header::CONNECTION);
            let up = client
                .request(parts.method, format!("{upstream}{path}"))
                .headers(headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let mut res = axum::http::Response::builder().status(up.status());
            for (k, v) in up.headers() {
                if k != reqwest::header::CONNECTION
                    && k != reqwest::header::CONTENT_LENGTH
                    && k != reqwest::header::TRANSFER_ENCODING
                {
                    res = res.header(k, v);
                }
            }
            res.body(axum::body::Body::from(up.bytes().await.unwrap()))
                .unwrap()
        }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(socket, app).await });
    format!("http://{addr}")
}

/// What drains the queue in a listener benchmark.
#[derive(Clone, Copy)]
enum Consumer<'a> {
    /// A worker binary (`activity-listener poll`) at a concurrency.
    Worker { bin: &'a str, concurrency: u16 },
    /// `system/boto3_consumer.py`: a plain boto3 consumer.
    Boto3,
}

/// The consumer as a process with its standard error in `log`; its id once it
/// is ready to receive.
async fn start_consumer(
    s: &integration_tests::TestStack,
    consumer: Consumer<'_>,
    log: &std::path::Path,
) -> tokio::process::Child {
    let front = keep_alive_front(s.stack.moto.clone()).await;
    let mut cmd = match consumer {
        Consumer::Worker { bin, concurrency } => {
            let mut c = s.listener_command(bin);
            let concurrency = concurrency.to_string();
            c.args(["poll", "--wait-secs", "1", "--concurrency", &concurrency]);
            c.stdout(Stdio::null());
            c
        }
        Consumer::Boto3 => {
            let python = integration_tests::tools::installed()
                .unwrap()
                .moto_server
                .with_file_name("python");
            let mut c = s.listener_command(python.to_str().unwrap());
            c.arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/system/boto3_consumer.py"
            ))
            .args([&s.provisioned.queue_url, &s.provisioned.table])
            .env("AWS_DEFAULT_REGION", integration_tests::REGION)
            .stdout(Stdio::piped());
            c
        }
    };
    let mut child = cmd
        .env("AWS_ENDPOINT_URL_SQS", front)
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    match child.stdout.take() {
        Some(out) => {
            use tokio::io::AsyncBufReadExt;
            let mut line = String::new();
            tokio::io::BufReader::new(out)
                .read_line(&mut line)
                .await
                .unwrap();
            assert_eq!(line.trim(), "ready", "the boto3 consumer did not start");
        }
        None => tokio::time::sleep(Duration::from_millis(500)).await,
    }
    child
}

async fn drain(consumer: Consumer<'_>, event_type: &str, n: usize) -> Drain {
    let s = provisioned(false).await;
    let log = std::env::temp_dir().join(format!("bench-worker-{}.log", Uuid::new_v4()));
    let mut w = start_consumer(&s, consumer, &log).await;
    let pid = w.id().unwrap();
    let cpu0 = cpu_secs(pid);
    let started = Instant::now();
    let bodies: Vec<String> = (0..n)
        .map(|_| {
            event(
                event_type,
                Uuid::new_v4(),
                json!({"n": 1, "name": "a"}),
                json!({"n": 2, "name": "b"}),
            )
            .to_string()
        })
        .collect();
    for (i, chunk) in bodies.chunks(10).enumerate() {
        s.send_batch(&s.provisioned.queue_url, chunk).await;
        // moto's receive slows as the queue deepens: keep it shallow.
        if i % 5 == 4 {
            while s.queue_depth(&s.provisioned.queue_url).await > 60 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let recording = event_type != "ContactDetailEditedEvent";
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < deadline,
            "the queue was not drained within 10 minutes"
        );
        assert!(
            w.try_wait().unwrap().is_none(),
            "the consumer exited; its log: {}",
            log.display()
        );
        let done = if recording {
            s.item_count().await >= n
        } else {
            s.queue_depth(&s.provisioned.queue_url).await == 0
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu0;
    w.start_kill().unwrap();
    w.wait().await.unwrap();
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_file(&log).ok();
    let batches: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "batch processed")
        .collect();
    let sum = |field: &str| -> f64 {
        batches
            .iter()
            .filter_map(|v| v["fields"][field].as_f64())
            .sum()
    };
    let writes = sum("write_requests");
    let messages: u64 = batches
        .iter()
        .filter_map(|v| v["fields"]["messages"].as_u64())
        .sum();
    Drain {
        secs,
        cpu_us_per_event: cpu * 1e6 / n as f64,
        writes_per_event: writes / n as f64,
        reads_per_event: sum("read_requests") / n as f64,
        wcu_per_event: sum("write_units") / n as f64,
        messages_per_batch: messages as f64 / batches.len().max(1) as f64,
    }
}

/// The listener as of `BENCH_BASELINE_BIN` (a folder holding `it-listener`
/// and `it-api` built from an earlier commit), for same-run comparisons.
fn baseline_bin(name: &str) -> Option<String> {
    let dir = std::env::var("BENCH_BASELINE_BIN").ok()?;
    let path = std::path::Path::new(&dir).join(name);
    path.exists().then(|| path.to_string_lossy().into_owned())
}

fn drain_row(label: &str, n: usize, d: &Drain, floor: Option<(f64, f64)>) {
    // Receives and deletes: one each per batch (the few empty receives aside).
    let sqs = if d.messages_per_batch > 0.0 {
        2.0 / d.messages_per_batch
    } else {
        0.0
    };
    let ddb = d.writes_per_event + d.reads_per_event;
    let bound = floor.map_or(String::from("—"), |(get, receive)| {
        format!("{:.0} µs", 2.0 * (ddb * get + sqs * receive))
    });
    println!(
        "| {label} | {n} | {:.1} s | {:.0} | {:.0} µs | {ddb:.3} | {:.3} | {:.2} | {:.1} | {bound} |",
        d.secs,
        n as f64 / d.secs,
        d.cpu_us_per_event,
        sqs + ddb,
        d.wcu_per_event,
        d.messages_per_batch
    );
}

async fn listener_bench(floor: Option<(f64, f64)>) {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    println!("### Listener end to end ({n} events, SQS kept alive, consumers as processes)\n");
    println!(
        "| consumer | events | drain time | events/s | CPU per event | DynamoDB requests per event | all requests per event | WCU per event | messages per batch | 2x floor (b) per request made |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let old = baseline_bin("it-listener");
    for c in [1u16, 4] {
        if let Some(bin) = &old {
            let d = drain(
                Consumer::Worker {
                    bin,
                    concurrency: c,
                },
                "PersonUpdatedEvent",
                n,
            )
            .await;
            drain_row(
                &format!("worker as before (BENCH_BASELINE_BIN), concurrency {c}"),
                n,
                &d,
                floor,
            );
        }
        let d = drain(
            Consumer::Worker {
                bin: LISTENER,
                concurrency: c,
            },
            "PersonUpdatedEvent",
            n,
        )
        .await;
        drain_row(&format!("worker, concurrency {c}"), n, &d, floor);
    }
    let d = drain(
        Consumer::Worker {
            bin: LISTENER,
            concurrency: 1,
        },
        "ContactDetailEditedEvent",
        n,
    )
    .await;
    drain_row(
        "worker, concurrency 1, records nothing (receive, parse, delete)",
        n,
        &d,
        floor,
    );
    let d = drain(Consumer::Boto3, "PersonUpdatedEvent", n).await;
    println!(
        "| plain boto3 consumer (system/boto3_consumer.py) | {n} | {:.1} s | {:.0} | {:.0} µs | — | — | — | — | — |",
        d.secs,
        n as f64 / d.secs,
        d.cpu_us_per_event
    );
    println!();
}

async fn load<F, Fut>(requests: usize, clients: usize, call: F) -> (f64, Vec<Duration>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for _ in 0..requests / clients {
                let t = Instant::now();
                call().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / secs, all)
}

/// `n` activities on `target` written straight to the table (as the listener
/// would have), the first a create when `create_first`.
async fn seed(s: &integration_tests::TestStack, target: Uuid, n: u32, create_first: bool) {
    let mut items = Vec::new();
    for i in 0..n {
        let event_type = if create_first && i == 0 {
            "TenureCreatedEvent"
        } else {
            "TenureUpdatedEvent"
        };
        let mut body = integration_tests::event(
            event_type,
            target,
            json!({"rent": i, "notes": "before"}),
            json!({"rent": i + 1, "notes": "after"}),
        );
        body["dateTime"] = json!(format!(
            "2024-{:02}-{:02}T10:{:02}:{:02}Z",
            1 + i % 12,
            1 + i % 28,
            i % 60,
            i / 60 % 60
        ));
        let domain::Outcome::Record(r) =
            domain::transform(body.to_string().as_bytes(), &domain::Mapping::default()).unwrap()
        else {
            unreachable!()
        };
        items.push(domain::item::to_item(&r[0]).unwrap());
    }
    for chunk in items.chunks(25) {
        let reqs = chunk
            .iter()
            .map(|i| {
                aws_sdk_dynamodb::types::WriteRequest::builder()
                    .put_request(
                        aws_sdk_dynamodb::types::PutRequest::builder()
                            .set_item(Some(i.clone()))
                            .build()
                            .unwrap(),
                    )
                    .build()
            })
            .collect();
        s.dynamodb
            .batch_write_item()
            .request_items(&s.provisioned.table, reqs)
            .send()
            .await
            .unwrap();
    }
}

/// The API as a release process over the stack's table, logging at `log_level`
/// to `stderr`; its base URL once it answers.
async fn spawn_api(
    s: &integration_tests::TestStack,
    bin: &str,
    log_level: &str,
    stderr: Stdio,
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = tokio::process::Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &s.stack.dynamodb)
        .env("ACTIVITY_TABLE", &s.provisioned.table)
        .env("ACTIVITY_TOKEN_KEY", integration_tests::TOKEN_KEY)
        .env("ACTIVITY_JWT_SECRET", integration_tests::JWT_SECRET)
        .env("ACTIVITY_API_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", log_level)
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if http
            .get(format!("{base}/api/v1/healthcheck/ping"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (api, base)
}

async fn api_bench() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    seed(&s, target, 1000, false).await;
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let clients = 8;
    println!(
        "### API under load (1,000 activities on one target, {requests} requests, {clients} clients, API as a release process)\n"
    );
    println!("| what | pageSize | requests/s | p50 | p99 | CPU per request | peak RSS |");
    println!("|---|---|---|---|---|---|---|");
    let old = baseline_bin("it-api").map(|b| ("API as before (BENCH_BASELINE_BIN)", b));
    for (what, bin) in old.into_iter().chain([("API now", API.to_owned())]) {
        let (mut api, base) = spawn_api(&s, &bin, "info", Stdio::null()).await;
        let pid = api.id().unwrap();
        for page in [10usize, 100] {
            let url = format!("{base}/api/v1/activityhistory?targetId={target}&pageSize={page}");
            let (rps, lat, cpu) = api_load(&url, pid, requests, clients).await;
            let (_, peak) = rss_mib(pid);
            println!(
                "| {what} | {page} | {rps:.0} | {:.2} ms | {:.2} ms | {cpu:.0} µs | {peak:.1} MiB |",
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
            );
        }
        api.start_kill().unwrap();
        api.wait().await.unwrap();
    }
    for page in [10usize, 100] {
        let (ddb, table) = (s.dynamodb.clone(), s.provisioned.table.clone());
        let own0 = cpu_secs(std::process::id());
        let (rps, lat) = load(requests, clients, move || {
            let (ddb, table) = (ddb.clone(), table.clone());
            async move {
                ddb.query()
                    .table_name(&table)
                    .index_name(domain::table::BY_CREATED_AT)
                    .key_condition_expression("targetId = :t")
                    .expression_attribute_values(":t", AttributeValue::S(target.to_string()))
                    .scan_index_forward(false)
                    .limit(page as i32 + 1)
                    .send()
                    .await
                    .unwrap();
            }
        })
        .await;
        let own = cpu_secs(std::process::id()) - own0;
        println!(
            "| baseline: the same Query through the SDK (as shipped) | {page} | {rps:.0} | {:.2} ms | {:.2} ms | {:.0} µs (the benchmark process) | — |",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            own * 1e6 / requests as f64
        );
    }
    println!();
}

/// `requests` GETs of `url` from `clients` clients after 20 to warm up:
/// requests/s, sorted latencies, and the CPU per request of process `pid` (µs).
async fn api_load(
    url: &str,
    pid: u32,
    requests: usize,
    clients: usize,
) -> (f64, Vec<Duration>, f64) {
    let (http, token) = (reqwest::Client::new(), hs256_token(json!({})));
    for _ in 0..20 {
        let r = http.get(url).bearer_auth(&token).send().await.unwrap();
        r.bytes().await.unwrap();
    }
    let cpu0 = cpu_secs(pid);
    let url = url.to_owned();
    let (rps, lat) = load(requests, clients, move || {
        let (h, t, url) = (http.clone(), token.clone(), url.clone());
        async move {
            let r = h.get(&url).bearer_auth(&t).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    })
    .await;
    (rps, lat, (cpu_secs(pid) - cpu0) * 1e6 / requests as f64)
}

/// DynamoDB queries the API logged so far (one `dynamodb query` line each).
fn queries_logged(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("\"dynamodb query\"")
        .count()
}

async fn reading_bench() {
    let s = provisioned(false).await;
    let targets: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    for t in &targets {
        seed(&s, *t, 100, true).await;
    }
    let log = std::env::temp_dir().join(format!("reading-bench-{}.log", Uuid::new_v4()));
    let file = std::fs::File::create(&log).unwrap();
    let (mut api, base) = spawn_api(&s, API, "info", Stdio::from(file)).await;
    let pid = api.id().unwrap();
    let (http, token) = (reqwest::Client::new(), hs256_token(json!({})));
    let requests: usize = 200;
    let merged: String = targets.iter().map(|t| format!("targetId={t}&")).collect();
    let t0 = targets[0];
    println!(
        "### Reading in more ways (10 targets of 100 activities, {requests} requests each, one client, API as a release process)\n"
    );
    println!("| what | DynamoDB queries per answer | p50 | p99 | API CPU per request |");
    println!("|---|---|---|---|---|");
    for (what, url) in [
        (
            "baseline: one target's page of 10",
            format!("{base}/api/v1/activityhistory?targetId={t0}&pageSize=10"),
        ),
        (
            "merged page of 10 over 10 targets",
            format!("{base}/api/v1/activityhistory?{merged}pageSize=10"),
        ),
        (
            "state of a target (100 records folded)",
            format!("{base}/api/v1/activityhistory/state?targetId={t0}"),
        ),
    ] {
        for _ in 0..10 {
            let r = http.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200, "{what}");
            r.bytes().await.unwrap();
        }
        let (q0, cpu0) = (queries_logged(&log), cpu_secs(pid));
        let (h, t, u) = (http.clone(), token.clone(), url.clone());
        let (_, lat) = load(requests, 1, move || {
            let (h, t, u) = (h.clone(), t.clone(), u.clone());
            async move {
                let r = h.get(&u).bearer_auth(&t).send().await.unwrap();
                r.bytes().await.unwrap();
            }
        })
        .await;
        let cpu = cpu_secs(pid) - cpu0;
        let queries = (queries_logged(&log) - q0) as f64 / requests as f64;
        println!(
            "| {what} | {queries:.1} | {:.2} ms | {:.2} ms | {:.0} µs |",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            cpu * 1e6 / requests as f64
        );
    }
    println!();
    api.start_kill().unwrap();
    api.wait().await.unwrap();
    std::fs::remove_file(&log).ok();
}

async fn lambda_bench() {
    println!("### Lambda\n");
    for (name, path) in [("listener", LISTENER), ("api", API)] {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        println!(
            "- {name} binary, release, stripped: {:.1} MiB",
            size as f64 / 1048576.0
        );
    }
    let s = provisioned(false).await;
    let mut starts = Vec::new();
    for _ in 0..5 {
        let api = runtime_api::start().await;
        let t = Instant::now();
        let mut child = s
            .lambda_command(LISTENER, &api)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = api.first_poll.clone();
        first.wait_for(Option::is_some).await.unwrap();
        starts.push(t.elapsed());
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }
    starts.sort();
    println!(
        "- cold start, process spawn to first poll of the Runtime API (median of 5): {:.1} ms",
        starts[2].as_secs_f64() * 1e3
    );

    for (what, bin) in [
        (
            "as before (BENCH_BASELINE_BIN)",
            baseline_bin("it-listener"),
        ),
        ("now", Some(LISTENER.to_owned())),
    ] {
        let Some(bin) = bin else { continue };
        let (cpu, rss, peak) = warm_lambda(&s, &bin).await;
        println!(
            "- {what}: CPU per event, warm, 1,000 messages in invocations of 10 (SQS receive and delete are the platform's; one BatchGetItem and one BatchWriteItem per invocation): {cpu:.0} µs; RSS after 1,100 messages: {rss:.1} MiB (peak {peak:.1} MiB)"
        );
    }
    println!();
}

/// A warm function's CPU per event (µs) over 1,000 messages after 100, and its
/// RSS and peak RSS (MiB) after them.
async fn warm_lambda(s: &integration_tests::TestStack, bin: &str) -> (f64, f64, f64) {
    let mut api = runtime_api::start().await;
    let mut child = s
        .lambda_command(bin, &api)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut cpu0 = 0.0;
    for n in 0..110 {
        if n == 10 {
            // After a warm-up of 100 messages: the steady state of a warm function.
            cpu0 = cpu_secs(pid);
        }
        let bodies: Vec<(String, String)> = (0..10)
            .map(|i| {
                (
                    format!("m{i}"),
                    event(
                        "PersonUpdatedEvent",
                        Uuid::new_v4(),
                        json!({"a": 1}),
                        json!({"a": 2}),
                    )
                    .to_string(),
                )
            })
            .collect();
        api.events.send(sqs_event(&bodies)).await.unwrap();
        let a = api.answers.recv().await.unwrap();
        assert_eq!(a.body, json!({"batchItemFailures": []}));
    }
    let cpu = cpu_secs(pid) - cpu0;
    let (rss, peak) = rss_mib(pid);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    (cpu * 1e6 / 1000.0, rss, peak)
}

#[tokio::main]
async fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!(
        "Machine: {} cores, {}\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    if run("lambda") {
        lambda_bench().await;
    }
    if run("api") {
        api_bench().await;
    }
    if run("reading") {
        reading_bench().await;
    }
    let mut b = None;
    if run("floor") || run("listener") {
        b = Some(floor::floor().await);
    }
    if run("listener") {
        listener_bench(b).await;
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}
