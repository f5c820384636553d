//! Integration tests: one binary, so one pair of emulators serves every test.

mod foundation;
