//! The client under the real SDK, against a small HTTP/1.1 server on loopback
//! that counts the connections it accepts.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use http_body_util::Full;

/// How the test server answers.
#[derive(Clone, Copy)]
enum Server {
    /// Keeps connections open.
    KeepAlive,
    /// Answers with `Connection: close`, as moto does.
    Closes,
    /// Answers, then closes the connection 50 ms later without saying so (a
    /// server's idle timeout).
    DropsIdle,
    /// Answers after ten seconds.
    Slow,
    /// Answers its first request of all with a 500, then as `KeepAlive`.
    FailsFirst,
}

/// A server on 127.0.0.1; its URL and the count of connections accepted.
async fn serve(how: Server) -> (String, Arc<AtomicUsize>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let (count, answered) = (accepted.clone(), Arc::new(AtomicUsize::new(0)));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = socket.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(connection(tcp, how, answered.clone()));
        }
    });
    (url, accepted)
}

/// The answer to a request: a 500 for `FailsFirst`'s first, `{}` otherwise.
fn answer(how: Server, first: bool) -> http::Response<Full<Bytes>> {
    let (status, body): (u16, &'static [u8]) = if first && matches!(how, Server::FailsFirst) {
        (
            500,
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError"}"#,
        )
    } else {
        (200, b"{}")
    };
    let mut res = http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0");
    if matches!(how, Server::Closes) {
        res = res.header("connection", "close");
    }
    res.body(Full::new(Bytes::from_static(body))).unwrap()
}

async fn connection(tcp: tokio::net::TcpStream, how: Server, answered: Arc<AtomicUsize>) {
    let asked = Arc::new(tokio::sync::Notify::new());
    let notify = asked.clone();
    let service = hyper::service::service_fn(move |_req| {
        let (notify, answered) = (notify.clone(), answered.clone());
        async move {
            notify.notify_one();
            if matches!(how, Server::Slow) {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            let first = answered.fetch_add(1, Ordering::SeqCst) == 0;
            Ok::<_, Infallible>(answer(how, first))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    if matches!(how, Server::DropsIdle) {
        // One exchange, then the socket is dropped 50 ms after the request came.
        let drop_after_one = async {
            asked.notified().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::select! {
            _ = conn => {}
            _ = drop_after_one => {}
        }
    } else {
        let _ = conn.await;
    }
}

/// A DynamoDB client of `url` on this crate's client, with one retry.
fn client(url: &str, timeouts: TimeoutConfig) -> aws_sdk_dynamodb::Client {
    client_with(url, timeouts, RetryConfig::standard().with_max_attempts(2))
}

/// The same without retries, so a request sent on a dead connection fails.
fn without_retries(url: &str) -> aws_sdk_dynamodb::Client {
    client_with(url, TimeoutConfig::disabled(), RetryConfig::disabled())
}

fn client_with(
    url: &str,
    timeouts: TimeoutConfig,
    retries: RetryConfig,
) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-2"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        .http_client(sdk_http::Client::shared())
        .timeout_config(timeouts)
        .retry_config(retries)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn get(c: &aws_sdk_dynamodb::Client) -> Result<(), String> {
    c.get_item()
        .table_name("t")
        .key("id", AttributeValue::S("x".into()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let (url, accepted) = serve(Server::KeepAlive).await;
    let c = client(&url, TimeoutConfig::disabled());
    for _ in 0..5 {
        get(&c).await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_requests_open_connections_and_then_reuse_them() {
    let (url, accepted) = serve(Server::KeepAlive).await;
    let c = client(&url, TimeoutConfig::disabled());
    let together = || futures_join(&c);
    together().await;
    let first = accepted.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&first),
        "{first} connections for 4 concurrent requests"
    );
    together().await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        first,
        "the second round opened connections"
    );
}

async fn futures_join(c: &aws_sdk_dynamodb::Client) {
    let (a, b, d, e) = tokio::join!(get(c), get(c), get(c), get(c));
    for r in [a, b, d, e] {
        r.unwrap();
    }
}

#[tokio::test]
async fn a_connection_the_server_closes_is_not_used_again() {
    let (url, accepted) = serve(Server::Closes).await;
    let c = without_retries(&url);
    for _ in 0..3 {
        get(&c).await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_connection_dropped_while_idle_is_replaced() {
    let (url, accepted) = serve(Server::DropsIdle).await;
    let c = without_retries(&url);
    get(&c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    get(&c).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_retry_after_a_server_error_goes_out_on_a_new_connection() {
    let (url, accepted) = serve(Server::FailsFirst).await;
    let c = client(&url, TimeoutConfig::disabled());
    get(&c).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_after_the_read_timeout() {
    let (url, accepted) = serve(Server::Slow).await;
    let timeouts = TimeoutConfig::builder()
        .read_timeout(Duration::from_millis(200))
        .build();
    let c = client(&url, timeouts);
    let started = Instant::now();
    let err = get(&c).await.unwrap_err();
    assert!(
        err.contains("timeout") || err.contains("no answer within"),
        "{err}"
    );
    // Two attempts of 200 ms and the retry's back-off (at most 1 s), far from
    // the server's 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // The timed-out connection was dropped, not pooled: the retry opened another.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn nothing_listening_is_an_io_error_not_a_panic() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(
        &format!("http://127.0.0.1:{port}"),
        TimeoutConfig::disabled(),
    );
    let err = get(&c).await.unwrap_err();
    assert!(
        err.contains("io error") || err.contains("onnection refused"),
        "{err}"
    );
}
