//! The `activity-api` program behind the thin binary.

use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::config::{Command, Config};
use crate::{AppState, auth, store};

/// Signs a development token with the configured HS256 secret.
pub fn dev_token(secret: &[u8], sub: &str, groups: &[String], hours: u64) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = serde_json::json!({
        "sub": sub, "name": sub, "email": format!("{sub}@localhost"), "groups": groups,
        "iat": now, "nbf": now, "exp": now + hours * 3600,
    });
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )?)
}

/// The whole `activity-api` program: parse configuration (a blank value counts as
/// not given), set up JSON logging, build the client and verifier once, and serve
/// (HTTP or Lambda).
pub async fn main() -> Result<()> {
    let config = Config::load();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .init();
    if let Some(Command::DevToken { sub, groups, hours }) = &config.command {
        let Some(secret) = &config.jwt_secret else {
            bail!("dev-token needs ACTIVITY_JWT_SECRET");
        };
        println!("{}", dev_token(secret.expose(), sub, groups, *hours)?);
        return Ok(());
    }
    let token_key = domain::token::TokenKey::new(config.token_key.expose().to_vec())
        .context("ACTIVITY_TOKEN_KEY must be at least 16 bytes")?;
    let verifier = auth::Verifier::new(config.auth()).await?;
    let sdk = sdk_http::sdk_config().await;
    let state = AppState {
        store: store::Store {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table: config.table.clone(),
        },
        token_key,
        verifier: Arc::new(verifier),
        access: Arc::new(crate::access::Policy {
            rules: crate::access::Rules::configured(config.access_file.as_deref())?,
            ..Default::default()
        }),
        mapping: Arc::new(domain::Mapping::load(config.mapping_file.as_deref())?),
        ingest: ingest(&config, &sdk)?.map(Arc::new),
    };
    let settings = config.http();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return crate::run_lambda(state, &settings)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %listener.local_addr()?, table = %config.table, "activity-api listening");
    crate::serve(listener, state, &settings, shutdown_signal()).await?;
    tracing::info!("activity-api stopped");
    Ok(())
}

/// Posting, when `ACTIVITY_INGEST_QUEUE_URL` is set: the queue, the writers and
/// the key.
fn ingest(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Option<crate::ingest::Ingest>> {
    let Some(queue_url) = config.ingest_queue_url.clone() else {
        return Ok(None);
    };
    let key = config
        .ingest_key
        .as_ref()
        .and_then(|k| domain::posted::IngestKey::new(k.expose().to_vec()))
        .with_context(|| {
            format!(
                "ACTIVITY_INGEST_QUEUE_URL is set, so ACTIVITY_INGEST_KEY is required, at least {} bytes (the listener's key)",
                domain::posted::MIN_KEY_BYTES
            )
        })?;
    let writer_groups = config.writer_groups();
    if writer_groups.is_empty() {
        tracing::warn!(
            "ACTIVITY_INGEST_QUEUE_URL is set but ACTIVITY_WRITER_GROUPS is not: nobody may post"
        );
    }
    Ok(Some(crate::ingest::Ingest {
        sqs: aws_sdk_sqs::Client::new(sdk),
        queue_url,
        writer_groups,
        key,
    }))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
