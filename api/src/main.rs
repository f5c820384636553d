//! `activity-api`: a thin binary over [`api::app::main`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::app::main().await
}
