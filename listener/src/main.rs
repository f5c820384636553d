//! `activity-listener`: a thin binary over [`listener::app::run`].

/// mimalloc rather than the system allocator: malloc and free were 14% of the
/// listener's CPU per event (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    listener::app::run()
}
