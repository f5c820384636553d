//! The HTTP client every AWS SDK client of a process shares.
//!
//! A request through the SDK with its default client (hyper-util's pooled
//! client behind the SDK's connector layers) cost 290-330 µs of CPU on the
//! benchmark machine, against 80-120 µs for the same request sent by hand on a
//! kept-alive hyper connection; most of the difference is the SDK's own work,
//! and this client takes 20-60 µs of it away (BENCHMARKS.md, "The floor of an
//! AWS request"). It is that hyper connection with what the SDK needs around it
//! and nothing else:
//!
//! - HTTP/1.1 on hyper's connection API; DynamoDB, SQS and SNS speak HTTP/1.1.
//! - A small pool per origin (scheme, host, port): the most recently used idle
//!   connection first, at most [`MAX_IDLE_PER_ORIGIN`] kept, each for at most
//!   [`IDLE_TIMEOUT`]. Connections in use are not limited: the caller bounds
//!   its concurrency.
//! - TLS by rustls (aws-lc-rs) with the operating system's roots, HTTP/1.1 by
//!   ALPN; plain HTTP for the local emulators. `TCP_NODELAY` on every socket.
//! - The SDK's connect timeout around connecting (and TLS), its read timeout
//!   around sending the request and reading the whole response, which is
//!   read into memory (at most [`MAX_RESPONSE_BYTES`]) before the connection
//!   goes back to the pool. Neither is ever unbounded: without the SDK's,
//!   [`CONNECT_TIMEOUT`] and [`READ_TIMEOUT`] apply.
//! - Every failure is a [`ConnectorError`] classified as the SDK's own client
//!   does: timeouts, I/O and closed connections are transient (retried), a
//!   misuse is a user error.
//! - The SDK's connection poisoning: a connection whose answer the SDK
//!   classifies as a transient error (a 500, 502, 503 or 504, or a transient
//!   error code) is not used again, so the retry goes out on a new one. No 5xx
//!   answer's connection is pooled at all.
//!
//! Not supported, because the service does not need them: HTTP proxies,
//! HTTP/2, and request bodies that stream (every SDK call here sends bytes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Idle connections kept per origin; more are closed when they come back.
pub const MAX_IDLE_PER_ORIGIN: usize = 16;
/// How long an idle connection is kept. Shorter than the idle timeouts of the
/// AWS endpoints, so a kept connection is rarely one the server has closed (and
/// when it is, the request fails as I/O and the SDK retries it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest response body read (DynamoDB's largest responses are 16 MB).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Connecting (TCP and TLS) when the SDK sets no connect timeout: the SDK's default.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// One exchange (request sent, whole response read) when the SDK sets no read
/// timeout: longer than an SQS long poll (20 s at most), so a receive that waits
/// for messages is not cut short, yet a dead connection cannot hold a caller.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a pooled connection may take to be ready for the next request
/// before another is used.
const READY_TIMEOUT: Duration = Duration::from_millis(100);

/// The SDK configuration of a process: the standard chain (environment, profile,
/// the platform's role) with this client, built once and shared by all its
/// service clients.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(Client::shared())
        .stalled_stream_protection(stalled_stream_protection())
        .load()
        .await
}

/// Off: this client reads every response whole under its read timeout
/// ([`READ_TIMEOUT`] when the SDK sets none), which bounds a stalled response;
/// the SDK's protection would wrap every body in a throughput monitor.
pub fn stalled_stream_protection()
-> aws_config::stalled_stream_protection::StalledStreamProtectionConfig {
    aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled()
}

/// The client; clones share one pool.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pool: Arc<Pool>,
}

impl Client {
    /// A new client with an empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new client, as the SDK's configuration takes it.
    pub fn shared() -> SharedHttpClient {
        SharedHttpClient::new(Self::new())
    }
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(Connector {
            pool: self.pool.clone(),
            connect_timeout: settings.connect_timeout().unwrap_or(CONNECT_TIMEOUT),
            read_timeout: settings.read_timeout().unwrap_or(READ_TIMEOUT),
        })
    }
}

#[derive(Debug, Clone)]
struct Connector {
    pool: Arc<Pool>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.send(request).await })
    }
}

/// Where a connection goes: its pool key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(uri: &http::Uri) -> Result<Self, ConnectorError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(user(format!("unsupported URI scheme {other:?}"))),
        };
        let host = uri.host().ok_or_else(|| user("URI without a host"))?;
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // `[::1]` in a URI is `::1` to connect to.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self { https, host, port })
    }
}

impl Connector {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let request = request.try_into_http1x().map_err(|e| user(e.to_string()))?;
        let origin = Origin::of(request.uri())?;
        let request = origin_form(request)?;
        let mut sender = match self.pool.checkout(&origin).await {
            Some(sender) => sender,
            None => within(self.connect_timeout, self.pool.connect(&origin)).await?,
        };
        let poisoned = Arc::new(AtomicBool::new(false));
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            let flag = poisoned.clone();
            capture.set_connection_retriever(move || {
                let flag = flag.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || flag.store(true, Ordering::Relaxed))
                        .build(),
                )
            });
        }
        let (parts, body) = within(self.read_timeout, exchange(&mut sender, request)).await?;
        if keeps_alive(&parts) && !parts.status.is_server_error() {
            self.pool.put_back(origin, sender, poisoned);
        }
        let response = http::Response::from_parts(parts, SdkBody::from(body));
        HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
    }
}

/// The request as HTTP/1.1 sends it to a server (not a proxy): the path and
/// query as its target, the authority in `Host` (which SigV4 signed).
fn origin_form(request: http::Request<SdkBody>) -> Result<http::Request<SdkBody>, ConnectorError> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(http::header::HOST) {
        let host = host_header(&parts.uri)?;
        parts.headers.insert(http::header::HOST, host);
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = target
        .parse()
        .map_err(|e: http::uri::InvalidUri| user(e.to_string()))?;
    Ok(http::Request::from_parts(parts, body))
}

/// The host, and the port unless it is the scheme's default: what SigV4 signs
/// (never user information).
fn host_header(uri: &http::Uri) -> Result<http::HeaderValue, ConnectorError> {
    let host = uri.host().ok_or_else(|| user("URI without a host"))?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    http::HeaderValue::from_str(&value).map_err(|e| user(e.to_string()))
}

/// Sends the request and reads the whole response.
async fn exchange(
    sender: &mut SendRequest<SdkBody>,
    request: http::Request<SdkBody>,
) -> Result<(http::response::Parts, bytes::Bytes), ConnectorError> {
    let response = sender.send_request(request).await.map_err(classify)?;
    let (parts, body) = response.into_parts();
    let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => classify(*e),
            // Over the limit: it would be again.
            Err(e) => ConnectorError::other(e, None),
        })?
        .to_bytes();
    Ok((parts, body))
}

fn keeps_alive(parts: &http::response::Parts) -> bool {
    !parts
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// `future` bounded by `limit`; running out is a timeout.
async fn within<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::timeout(
                format!("no answer within {limit:?}").into(),
            ))
        })
}

struct Idle {
    sender: SendRequest<SdkBody>,
    since: Instant,
    /// Set by the SDK when the connection's last answer was a transient error.
    poisoned: Arc<AtomicBool>,
}

impl Idle {
    fn usable(&self) -> bool {
        self.since.elapsed() < IDLE_TIMEOUT
            && !self.sender.is_closed()
            && !self.poisoned.load(Ordering::Relaxed)
    }
}

/// Idle connections by origin, and the TLS set-up, made on the first HTTPS
/// connection.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    /// The most recently used idle connection to `origin` that is still open.
    async fn checkout(&self, origin: &Origin) -> Option<SendRequest<SdkBody>> {
        while let Some(mut sender) = self.pop(origin) {
            // Ready at once unless the connection is finishing an exchange or
            // closing; one that takes longer is dropped.
            let ready = tokio::time::timeout(READY_TIMEOUT, sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                return Some(sender);
            }
        }
        None
    }

    fn pop(&self, origin: &Origin) -> Option<SendRequest<SdkBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(origin)?;
        while let Some(entry) = list.pop() {
            if entry.usable() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put_back(&self, origin: Origin, sender: SendRequest<SdkBody>, poisoned: Arc<AtomicBool>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(origin).or_default();
        list.retain(Idle::usable);
        if list.len() < MAX_IDLE_PER_ORIGIN {
            list.push(Idle {
                sender,
                since: Instant::now(),
                poisoned,
            });
        }
    }

    /// A new connection, its protocol driver spawned on the current runtime.
    async fn connect(&self, origin: &Origin) -> Result<SendRequest<SdkBody>, ConnectorError> {
        let tcp = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        tcp.set_nodelay(true)
            .map_err(|e| ConnectorError::io(e.into()))?;
        if origin.https {
            let tls = self.tls_connector()?;
            let name = rustls::pki_types::ServerName::try_from(origin.host.clone())
                .map_err(|e| user(e.to_string()))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            handshake(stream).await
        } else {
            handshake(tcp).await
        }
    }

    fn tls_connector(&self) -> Result<tokio_rustls::TlsConnector, ConnectorError> {
        self.tls
            .get_or_init(tls_connector)
            .clone()
            .map_err(|e| ConnectorError::other(e.into(), None))
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<SdkBody>, ConnectorError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(classify)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "AWS connection closed with an error");
        }
    });
    Ok(sender)
}

/// rustls with aws-lc-rs, the operating system's roots and HTTP/1.1 by ALPN.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found for HTTPS: {:?}",
            found.errors
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A hyper error as the SDK's own client classifies it: closed, cancelled and
/// I/O failures are transient (retried), as is a message cut short; a misuse
/// is a user error; anything else is not retried.
fn classify(e: hyper::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_user() {
        ConnectorError::user(e.into())
    } else if e.is_closed() || e.is_canceled() || source_is_io(&e) {
        ConnectorError::io(e.into())
    } else if e.is_incomplete_message() {
        ConnectorError::other(e.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(e.into(), None)
    }
}

fn source_is_io(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn user(message: impl Into<String>) -> ConnectorError {
    ConnectorError::user(message.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_with_the_default_ports() {
        let o = |u: &str| Origin::of(&u.parse().unwrap());
        let ddb = o("https://dynamodb.eu-west-2.amazonaws.com/").unwrap();
        assert_eq!(
            (ddb.https, ddb.host.as_str(), ddb.port),
            (true, "dynamodb.eu-west-2.amazonaws.com", 443)
        );
        let local = o("http://127.0.0.1:8000/").unwrap();
        assert_eq!((local.https, local.port), (false, 8000));
        assert_eq!(o("http://[::1]:9/").unwrap().host, "::1");
        assert!(o("ftp://example.com/").is_err());
    }

    #[test]
    fn requests_go_out_in_origin_form_with_their_host() {
        let sent = |u: &str| {
            let r = http::Request::post(u).body(SdkBody::empty()).unwrap();
            origin_form(r).unwrap()
        };
        let r = sent("http://127.0.0.1:8000/123/queue?Action=x");
        assert_eq!(r.uri().to_string(), "/123/queue?Action=x");
        assert_eq!(r.headers()["host"], "127.0.0.1:8000");
        let r = sent("https://sqs.eu-west-2.amazonaws.com");
        assert_eq!(r.uri().to_string(), "/");
        assert_eq!(r.headers()["host"], "sqs.eu-west-2.amazonaws.com");
        // As SigV4 signs it: no default port, no user information.
        let r = sent("https://user:pw@dynamodb.eu-west-2.amazonaws.com:443/");
        assert_eq!(r.headers()["host"], "dynamodb.eu-west-2.amazonaws.com");
        assert_eq!(sent("http://localhost:80/").headers()["host"], "localhost");
        assert_eq!(
            sent("https://localhost:80/").headers()["host"],
            "localhost:80"
        );
    }

    #[test]
    fn https_has_the_systems_roots_and_speaks_http_1_1() {
        // The roots this machine trusts load, as they must on Lambda and the worker.
        assert!(tls_connector().is_ok(), "{:?}", tls_connector().err());
    }

    #[test]
    fn a_response_that_closes_its_connection_is_not_pooled() {
        let parts = |v: &str| {
            http::Response::builder()
                .header("connection", v)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        assert!(!keeps_alive(&parts("close")));
        assert!(!keeps_alive(&parts("Close")));
        assert!(keeps_alive(&parts("keep-alive")));
    }
}
