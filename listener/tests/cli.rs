//! The `activity-listener` binary's command line, run as a child process so the
//! environment it reads is its own and tests running beside it are not affected.
//! Every AWS endpoint points at a closed loopback port: a command that got past
//! its arguments by mistake could reach nothing else.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// `activity-listener` with `args`, fake credentials and only the variables in `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_activity-listener"))
        .args(args)
        .env_clear()
        .envs([
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("AWS_REGION", "eu-west-2"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run activity-listener")
}

#[test]
fn a_blank_queue_url_for_poll_is_reported_as_not_given() {
    let out = run(
        &["poll"],
        &[
            ("ACTIVITY_QUEUE_URL", ""),
            ("ACTIVITY_TABLE", " "),
            ("ACTIVITY_MAPPING_FILE", ""),
            ("ACTIVITY_CONCURRENCY", ""),
            ("ACTIVITY_WAIT_SECS", ""),
            ("ACTIVITY_VISIBILITY_SECS", ""),
            ("ACTIVITY_RETRY_DELAY_SECS", ""),
            ("ACTIVITY_STORE_RETRY_SECS", ""),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The one complaint is the missing queue: the blank numbers took their defaults.
    assert!(stderr.contains("required"), "{stderr}");
    assert!(stderr.contains("--queue-url"), "{stderr}");
    assert!(!stderr.contains("invalid value"), "{stderr}");
}

#[test]
fn a_blank_queue_url_for_dlq_is_unset_and_the_command_asks_for_a_queue() {
    let out = run(&["dlq", "stats"], &[("ACTIVITY_QUEUE_URL", "  ")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("name the activity queue"), "{stderr}");
}
