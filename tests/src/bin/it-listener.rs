//! The listener program, built inside the test package so the integration tests
//! can run it as a real process (`CARGO_BIN_EXE_it-listener`).

fn main() -> anyhow::Result<()> {
    listener::app::run()
}
