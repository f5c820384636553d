//! Integration tests: one binary, so one pair of emulators serves every test.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The listener program, built by this package for its tests.
const LISTENER: &str = env!("CARGO_BIN_EXE_it-listener");

mod access;
mod api;
mod append_only;
mod crash;
mod docs;
mod foundation;
mod lambda;
mod listener;
mod operations;
mod posting;
mod reading;
mod soak;
mod viewer;
