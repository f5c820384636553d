//! The floor of one AWS request on this machine, in one run: a DynamoDB GetItem
//! (DynamoDB Local) and an empty SQS ReceiveMessage (moto through the keep-alive
//! front), each variant on its own thread running a single-threaded runtime, its
//! clients built on that runtime, CPU from the thread's nanosecond clock:
//!
//! - (a) SigV4 signing alone;
//! - (b) a raw hyper HTTP/1.1 request with SigV4 over a kept-alive connection;
//! - (c) the SDK with an HTTP client that does no I/O (a canned answer);
//! - (d) the current SDK with its default HTTP client, and with stalled-stream
//!   protection off;
//! - (e) the SDK's new pooled client (aws-smithy-http-client `pool`), and the
//!   service's own client ([`sdk_http`]) with its settings: what ships.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use aws_sdk_dynamodb::config::{SharedHttpClient, StalledStreamProtectionConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;
use uuid::Uuid;

type Call = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = ()>>>>;
/// Builds a variant's [`Call`] on the runtime that will run it.
type Make = fn(Target) -> Pin<Box<dyn Future<Output = Call>>>;

/// One request, as the raw variants send it and the SDK variants are told to.
#[derive(Clone)]
struct Target {
    what: &'static str,
    endpoint: String,
    service: &'static str,
    /// The `X-Amz-Target` of the JSON protocol both services speak.
    operation: &'static str,
    body: String,
    table: String,
    queue_url: String,
}

/// CPU nanoseconds (on CPU, user and system) the calling thread has used: the
/// first field of `/proc/thread-self/schedstat`.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `n` calls after 100 to warm up, on a new thread and runtime; µs per call.
fn cost(n: usize, target: &Target, make: Make) -> f64 {
    let target = target.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut call = make(target).await;
            for _ in 0..100 {
                call().await;
            }
            let c0 = thread_cpu_ns();
            for _ in 0..n {
                call().await;
            }
            (thread_cpu_ns() - c0) as f64 / n as f64 / 1e3
        })
    })
    .join()
    .unwrap()
}

fn signed(t: &Target) -> http::Request<String> {
    let mut req = http::Request::post(format!("{}/", t.endpoint))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", t.operation)
        .header("host", t.endpoint.trim_start_matches("http://"))
        .header("content-length", t.body.len())
        .body(t.body.clone())
        .unwrap();
    let identity =
        aws_credential_types::Credentials::new("test", "test", None, None, "bench").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(integration_tests::REGION)
        .name(t.service)
        .time(SystemTime::now())
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        req.uri().to_string(),
        headers.into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(t.body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .unwrap()
        .into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

fn sign_only(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move {
        Box::new(move || {
            std::hint::black_box(signed(&t));
            Box::pin(async {}) as Pin<Box<dyn Future<Output = ()>>>
        }) as Call
    })
}

fn raw_hyper(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move {
        let addr = t.endpoint.trim_start_matches("http://").to_owned();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let sender = std::rc::Rc::new(tokio::sync::Mutex::new(sender));
        Box::new(move || {
            let (sender, req) = (sender.clone(), signed(&t));
            Box::pin(async move {
                let mut sender = sender.lock().await;
                sender.ready().await.unwrap();
                let res = sender.send_request(req).await.unwrap();
                assert_eq!(res.status(), 200);
                res.into_body().collect().await.unwrap();
            }) as Pin<Box<dyn Future<Output = ()>>>
        }) as Call
    })
}

/// An HTTP client that answers every request with `{}` and does no I/O.
#[derive(Debug, Clone)]
struct Canned;

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Canned {
    fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
        let status = 200u16.try_into().unwrap();
        HttpConnectorFuture::ready(Ok(HttpResponse::new(status, SdkBody::from("{}"))))
    }
}

/// A call of `t` through the SDK configured by `config`.
fn sdk_call(t: &Target, config: aws_config::SdkConfig) -> Call {
    if t.service == "dynamodb" {
        let (ddb, table) = (aws_sdk_dynamodb::Client::new(&config), t.table.clone());
        Box::new(move || {
            let request = ddb
                .get_item()
                .table_name(&table)
                .key("targetId", AttributeValue::S(Uuid::nil().to_string()))
                .key("id", AttributeValue::S(Uuid::nil().to_string()));
            Box::pin(async move {
                request.send().await.unwrap();
            })
        })
    } else {
        let (sqs, url) = (aws_sdk_sqs::Client::new(&config), t.queue_url.clone());
        Box::new(move || {
            let request = sqs.receive_message().queue_url(&url).wait_time_seconds(0);
            Box::pin(async move {
                request.send().await.unwrap();
            })
        })
    }
}

fn with_client(t: &Target, http: Option<SharedHttpClient>, stall: bool) -> Call {
    let mut b = integration_tests::sdk_config_with(&t.endpoint, http);
    if !stall {
        b = b.stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    }
    sdk_call(t, b.build())
}

fn no_io(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move { with_client(&t, Some(SharedHttpClient::new(Canned)), true) })
}

fn sdk_default(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move { with_client(&t, None, true) })
}

fn sdk_default_no_stall(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move { with_client(&t, None, false) })
}

fn sdk_pool(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move {
        let pool = aws_smithy_http_client::pool::ConnectionPool::builder()
            .build_http()
            .unwrap();
        let client = aws_smithy_http_client::pool::Client::new(&pool).unwrap();
        with_client(&t, Some(SharedHttpClient::new(client)), false)
    })
}

/// (b) then (c) in each call: what the SDK would cost if its own work and the
/// wire simply added up.
fn raw_then_no_io(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move {
        let mut raw = raw_hyper(t.clone()).await;
        let mut sdk = no_io(t).await;
        Box::new(move || {
            let (a, b) = (raw(), sdk());
            Box::pin(async move {
                a.await;
                b.await;
            }) as Pin<Box<dyn Future<Output = ()>>>
        }) as Call
    })
}

fn shipped(t: Target) -> Pin<Box<dyn Future<Output = Call>>> {
    Box::pin(async move { sdk_call(&t, integration_tests::sdk_config(&t.endpoint)) })
}

/// Prints the floor table (Markdown); returns floor (b) for GetItem and ReceiveMessage.
pub(crate) async fn floor() -> (f64, f64) {
    let s = integration_tests::provisioned(false).await;
    let sqs_front = super::keep_alive_front(s.stack.moto.clone()).await;
    let key = format!(
        r#"{{"targetId":{{"S":"{0}"}},"id":{{"S":"{0}"}}}}"#,
        Uuid::nil()
    );
    let targets = [
        Target {
            what: "DynamoDB GetItem",
            endpoint: s.stack.dynamodb.clone(),
            service: "dynamodb",
            operation: "DynamoDB_20120810.GetItem",
            body: format!(r#"{{"TableName":"{}","Key":{key}}}"#, s.provisioned.table),
            table: s.provisioned.table.clone(),
            queue_url: String::new(),
        },
        Target {
            what: "SQS ReceiveMessage, empty",
            endpoint: sqs_front,
            service: "sqs",
            operation: "AmazonSQS.ReceiveMessage",
            body: format!(
                r#"{{"QueueUrl":"{}","WaitTimeSeconds":0}}"#,
                s.provisioned.queue_url
            ),
            table: String::new(),
            queue_url: s.provisioned.queue_url.clone(),
        },
    ];
    let variants: [(&str, Make); 8] = [
        ("(a) SigV4 signing alone", sign_only),
        ("(b) raw hyper HTTP/1.1 + SigV4, kept alive", raw_hyper),
        (
            "(c) SDK, HTTP client doing no I/O (the SDK's own work)",
            no_io,
        ),
        ("(b) then (c) in each call", raw_then_no_io),
        (
            "(d) SDK, its default HTTP client (the current SDK)",
            sdk_default,
        ),
        (
            "(d) SDK, default HTTP client, stalled-stream protection off",
            sdk_default_no_stall,
        ),
        (
            "(e) SDK, aws-smithy-http-client's new `pool` client",
            sdk_pool,
        ),
        (
            "(e) SDK, the service's own client and settings (ships)",
            shipped,
        ),
    ];
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, rounds) = (env("BENCH_REQUESTS", 2_000), env("BENCH_ROUNDS", 3));
    let only = std::env::var("BENCH_VARIANT").unwrap_or_default();
    let variants: Vec<_> = variants
        .into_iter()
        .filter(|(l, _)| l.contains(&only))
        .collect();
    // Rounds interleave the variants, so a slow spell of this shared machine
    // does not fall on one variant only.
    let mut cells = vec![[Vec::new(), Vec::new()]; variants.len()];
    for _ in 0..rounds {
        for ((_, make), cell) in variants.iter().zip(&mut cells) {
            for (t, samples) in targets.iter().zip(cell.iter_mut()) {
                samples.push(cost(n, t, *make));
            }
        }
    }
    println!(
        "### The floor of an AWS request ({n} requests after 100, {rounds} rounds; CPU of the calling thread, median (range))\n"
    );
    println!("| variant | {} | {} |", targets[0].what, targets[1].what);
    println!("|---|---|---|");
    let mut raw = (0.0, 0.0);
    for ((label, _), cell) in variants.iter().zip(&mut cells) {
        let [get, receive] = cell;
        let (g, r) = (median(get), median(receive));
        if label.starts_with("(b) raw") {
            raw = (g.0, r.0);
        }
        println!(
            "| {label} | {:.0} µs ({:.0}-{:.0}) | {:.0} µs ({:.0}-{:.0}) |",
            g.0, g.1, g.2, r.0, r.1, r.2
        );
    }
    println!();
    raw
}

/// (median, min, max).
fn median(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}
