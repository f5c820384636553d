//! The API program, built inside the test package so tests and benchmarks can run
//! it as a real process (`CARGO_BIN_EXE_it-api`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::app::main().await
}
