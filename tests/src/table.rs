//! A fresh table of one test's own and nothing else, for the API's tests: they
//! read a table and need no topics or queues, which cost most of provisioning.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use tower::util::BoxCloneService;

use crate::{Stack, TOKEN_KEY};

/// The API as a service called with `oneshot`, no socket.
pub type App = BoxCloneService<Request, Response, Infallible>;

/// A running API on a loopback port, stopped when dropped.
pub struct RunningApi {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A uniquely named table, created the way provisioning creates it.
pub struct TableOnly {
    /// Table client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The table's name, unique to this test so tests run in parallel.
    pub table: String,
    /// Where the emulators are.
    pub stack: &'static Stack,
}

/// Creates a fresh table (indexes and TTL included) for one test.
pub async fn table_only() -> TableOnly {
    let stack = crate::stack().await;
    let dynamodb = crate::dynamodb(stack);
    let table = crate::unique("ActivityHistory");
    listener::table::create_table(&dynamodb, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    TableOnly {
        dynamodb,
        table,
        stack,
    }
}

/// The API's state over `table`, read-only, with the given authentication.
async fn api_state(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    auth: api::auth::AuthConfig,
) -> api::AppState {
    api::AppState {
        store: api::store::Store {
            client: dynamodb.clone(),
            table: table.to_owned(),
        },
        token_key: domain::token::TokenKey::new(TOKEN_KEY.as_bytes().to_vec()).expect("key"),
        verifier: std::sync::Arc::new(api::auth::Verifier::new(auth).await.expect("verifier")),
        access: Default::default(),
        mapping: Default::default(),
        ingest: None,
    }
}

/// The settings every test API runs with.
fn settings() -> api::HttpSettings {
    api::HttpSettings {
        cors_origins: vec!["https://frontend.example".into()],
        token_cookie: Some("platformToken".into()),
        request_timeout: Duration::from_secs(10),
        header_read_timeout: Duration::from_secs(10),
    }
}

impl TableOnly {
    /// The API's state over this table with the given authentication.
    pub async fn api_state(&self, auth: api::auth::AuthConfig) -> api::AppState {
        api_state(&self.dynamodb, &self.table, auth).await
    }

    /// The service `api::serve` would serve, to call with `oneshot`.
    pub async fn app(&self, auth: api::auth::AuthConfig) -> App {
        BoxCloneService::new(api::app(self.api_state(auth).await, &settings()))
    }

    /// The service with access rules and limits of the test's own.
    pub async fn app_with(&self, auth: api::auth::AuthConfig, access: api::access::Policy) -> App {
        let mut state = self.api_state(auth).await;
        state.access = std::sync::Arc::new(access);
        BoxCloneService::new(api::app(state, &settings()))
    }

    /// Serves the API over real HTTP on a free loopback port, for the few tests
    /// that prove serving end to end.
    pub async fn serve_api(&self, auth: api::auth::AuthConfig) -> RunningApi {
        let state = self.api_state(auth).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = api::serve(listener, state, &settings(), async {
                let _ = rx.await;
            })
            .await;
        });
        RunningApi {
            base,
            stop: Some(tx),
        }
    }

    /// Writes activities straight to the table.
    pub async fn put_items(&self, items: Vec<domain::item::Item>) {
        for item in items {
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .expect("put_item");
        }
    }
}

impl crate::TestStack {
    /// The API over this stack's table with posting enabled for `writer_groups`,
    /// queuing to this stack's activity queue; `None`: read-only.
    pub async fn api_app(&self, writer_groups: Option<&[&str]>) -> App {
        let mut state =
            api_state(&self.dynamodb, &self.provisioned.table, crate::hs256_auth()).await;
        state.ingest = writer_groups.map(|groups| {
            std::sync::Arc::new(api::ingest::Ingest {
                sqs: self.sqs.clone(),
                queue_url: self.provisioned.queue_url.clone(),
                writer_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                key: crate::ingest_key(),
            })
        });
        BoxCloneService::new(api::app(state, &settings()))
    }
}

/// Calls `app` once: the status and the body's bytes.
async fn call_bytes(app: &App, req: Request) -> (u16, Vec<u8>) {
    use tower::ServiceExt;
    let response = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, bytes.to_vec())
}

/// Calls `app` once: the status and the body as JSON (`null` when it is not).
pub async fn call(app: &App, req: Request) -> (u16, serde_json::Value) {
    let (status, bytes) = call_bytes(app, req).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, body)
}

fn get_request(token: &str, uri: &str) -> Request {
    Request::get(uri)
        .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request")
}

/// GET `uri` with a bearer `token`.
pub async fn get(app: &App, token: &str, uri: &str) -> (u16, serde_json::Value) {
    call(app, get_request(token, uri)).await
}

/// GET `uri` with a bearer `token`: the status and the body as text.
pub async fn get_text(app: &App, token: &str, uri: &str) -> (u16, String) {
    let (status, bytes) = call_bytes(app, get_request(token, uri)).await;
    (status, String::from_utf8_lossy(&bytes).into_owned())
}
