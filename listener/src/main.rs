//! `activity-listener`: a thin binary over [`listener::app::main`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    listener::app::main().await
}
