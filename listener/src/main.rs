//! `activity-listener`: a thin binary over [`listener::app::run`].

fn main() -> anyhow::Result<()> {
    listener::app::run()
}
