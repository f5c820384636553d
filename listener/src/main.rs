//! `activity-listener`: a thin binary over [`listener::app::main`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    listener::app::main().await
}
