//! Integration tests: one binary, so one pair of emulators serves every test.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod foundation;
mod listener;
