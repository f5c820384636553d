//! The listener program, built inside the test package so the integration tests
//! can run it as a real process (`CARGO_BIN_EXE_it-listener`).

/// mimalloc rather than the system allocator: malloc and free were 14% of the
/// listener's CPU per event (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    listener::app::run()
}
