//! The `activity-api` binary's command line, run as a child process so the
//! environment it reads is its own and tests running beside it are not affected.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const TOKEN_KEY: &str = "test-page-token-key-0123456789";
const JWT_SECRET: &str = "a-test-secret-that-is-at-least-32-bytes-long";

/// `activity-api` with `args` and only the variables in `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_activity-api"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run activity-api")
}

#[test]
fn a_blank_token_key_in_the_environment_is_reported_as_not_given() {
    let out = run(
        &["dev-token"],
        &[
            ("ACTIVITY_TOKEN_KEY", " "),
            ("ACTIVITY_JWT_SECRET", JWT_SECRET),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("required"), "{stderr}");
    assert!(stderr.contains("--token-key"), "{stderr}");
}

#[test]
fn blank_settings_in_the_environment_take_their_defaults() {
    let out = run(
        &["dev-token"],
        &[
            ("ACTIVITY_TOKEN_KEY", TOKEN_KEY),
            ("ACTIVITY_JWT_SECRET", JWT_SECRET),
            ("ACTIVITY_API_ADDR", ""),
            ("ACTIVITY_TABLE", ""),
            ("ACTIVITY_JWKS", ""),
            ("ACTIVITY_JWT_ISSUER", ""),
            ("ACTIVITY_JWT_AUDIENCE", " "),
            ("ACTIVITY_ALLOWED_GROUPS", ""),
            ("ACTIVITY_CORS_ORIGINS", ""),
            ("ACTIVITY_REQUEST_TIMEOUT_SECS", ""),
            ("ACTIVITY_HEADER_TIMEOUT_SECS", "  "),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim().split('.').count(), 3, "a JWT: {stdout}");
}
