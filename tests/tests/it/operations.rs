//! Operators' tools as real processes: dead-letter stats, peek, replay and
//! export, and publishing events from a file.

use std::process::Stdio;
use std::time::{Duration, Instant};

use domain::Mapping;
use integration_tests::{TestStack, event, provisioned};
use listener::worker::poll_once;
use serde_json::{Value, json};
use uuid::Uuid;

/// Runs the listener program to completion; returns (exit code, stdout).
async fn run(s: &TestStack, args: &[&str], mapping: Option<&std::path::Path>) -> (i32, String) {
    let mut c = s.listener_command(crate::LISTENER);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(m) = mapping {
        c.env("ACTIVITY_MAPPING_FILE", m);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("paul.fox@example.gov.uk"),
        "no e-mail addresses in logs"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn send(s: &TestStack, queue: &str, body: &str, group: Option<&str>) {
    let mut req = s.sqs.send_message().queue_url(queue).message_body(body);
    if let Some(g) = group {
        req = req
            .message_group_id(g)
            .message_deduplication_id(Uuid::new_v4().to_string());
    }
    req.send().await.unwrap();
}

async fn drain(s: &TestStack, mapping: Mapping) {
    let p = s.processor(mapping);
    let cfg = s.worker_config();
    let deadline = Instant::now() + Duration::from_secs(90);
    while s.queue_depth(&s.provisioned.queue_url).await > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        poll_once(&p, &s.sqs, &cfg).await.unwrap();
    }
}

fn widget_mapping() -> tempfile_path::TempPath {
    tempfile_path::write(
        "mapping.toml",
        "[events]\nWidgetCreatedEvent = { activity = \"create\", targetType = \"widget\" }\n",
    )
}

/// A small temporary-file helper, removed on drop.
mod tempfile_path {
    pub(crate) struct TempPath(pub(crate) std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }
    impl std::ops::Deref for TempPath {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }
    pub(crate) fn write(name: &str, text: &str) -> TempPath {
        let dir = std::env::temp_dir().join(format!("ah-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        TempPath(p)
    }
}

#[tokio::test]
async fn dead_letters_are_reported_without_change_and_a_fixed_type_replays_and_records() {
    let s = provisioned(true).await;
    let q = s.provisioned.queue_url.clone();
    let dlq = s.provisioned.dlq_url.clone();
    let widgets: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for (i, w) in widgets.iter().enumerate() {
        let body = event("WidgetCreatedEvent", *w, Value::Null, json!({"size": i}));
        send(&s, &q, &body.to_string(), Some(&format!("w{i}"))).await;
    }
    send(
        &s,
        &q,
        &event("GadgetMovedEvent", Uuid::new_v4(), json!({}), json!({})).to_string(),
        Some("g"),
    )
    .await;
    send(&s, &q, "this is not json", Some("bad1")).await;
    send(
        &s,
        &q,
        r#"{"id":"nope","eventType":"PersonUpdatedEvent"}"#,
        Some("bad2"),
    )
    .await;
    let good = Uuid::new_v4();
    send(
        &s,
        &q,
        &event("PersonCreatedEvent", good, Value::Null, json!({"a": 1})).to_string(),
        Some("ok"),
    )
    .await;

    // Three receives each, then SQS moves the six bad ones to the dead-letter queue.
    drain(&s, Mapping::default()).await;
    assert_eq!(s.activities(good).await.len(), 1);
    assert_eq!(s.queue_depth(&dlq).await, 6);

    let (code, out) = run(&s, &["dlq", "stats"], None).await;
    assert_eq!(code, 0, "{out}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        stats,
        json!({
            "total": 6,
            "by_reason": {
                "malformed": { "(none)": 1, "PersonUpdatedEvent": 1 },
                "unmapped": { "GadgetMovedEvent": 1, "WidgetCreatedEvent": 3 }
            }
        })
    );

    let (code, out) = run(&s, &["dlq", "peek", "--limit", "10"], None).await;
    assert_eq!(code, 0);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert!(
            r["messageId"].is_string() && r["firstSeenMs"].is_u64(),
            "{r}"
        );
        assert!(r["receiveCount"].as_u64().unwrap() >= 3, "{r}");
        assert!(
            r.get("body").is_none(),
            "no resident data without --show-data"
        );
    }
    let unmapped = rows
        .iter()
        .filter(|r| r["reasonClass"] == "unmapped")
        .count();
    assert_eq!(unmapped, 4);
    let (_, out) = run(&s, &["dlq", "peek", "--limit", "1", "--show-data"], None).await;
    assert!(out.contains("\"body\""));

    let export = tempfile_path::write("dlq.ndjson", "");
    let (code, out) = run(
        &s,
        &["dlq", "export", "--out", export.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(&*export).unwrap().lines().count(),
        6
    );

    // Looking changed nothing.
    assert_eq!(s.queue_depth(&dlq).await, 6);
    assert_eq!(s.queue_depth(&q).await, 0);

    let mapping = widget_mapping();
    let (code, out) = run(
        &s,
        &[
            "dlq",
            "replay",
            "--event-type",
            "WidgetCreatedEvent",
            "--dry-run",
        ],
        Some(&mapping),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["wouldReplay"].as_u64(), report["replayed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        (s.queue_depth(&dlq).await, s.queue_depth(&q).await),
        (6, 0),
        "a dry run changes nothing"
    );

    let (code, out) = run(
        &s,
        &["dlq", "replay", "--event-type", "WidgetCreatedEvent"],
        Some(&mapping),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["replayed"], 3, "{report}");
    assert_eq!(
        s.queue_depth(&dlq).await,
        3,
        "the other three stay dead-lettered"
    );

    let mut fixed = Mapping::default();
    fixed
        .overlay_str(&std::fs::read_to_string(&*mapping).unwrap(), false)
        .unwrap();
    drain(&s, fixed).await;
    for w in &widgets {
        let a = s.activities(*w).await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].target_type, "widget");
    }
    assert_eq!(s.queue_depth(&dlq).await, 3);
}

#[tokio::test]
async fn replay_killed_part_way_and_run_again_loses_no_message() {
    let s = provisioned(false).await;
    let dlq = s.provisioned.dlq_url.clone();
    const N: usize = 60;
    let targets: Vec<Uuid> = (0..N).map(|_| Uuid::new_v4()).collect();
    for t in &targets {
        send(
            &s,
            &dlq,
            &event("PersonUpdatedEvent", *t, json!({"a": 1}), json!({"a": 2})).to_string(),
            None,
        )
        .await;
    }
    let mut replay = s
        .listener_command(crate::LISTENER)
        .args(["dlq", "replay", "--rate", "10"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.queue_depth(&s.provisioned.queue_url).await < 10 {
        assert!(Instant::now() < deadline, "replay made no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replay.start_kill().unwrap(); // SIGKILL
    replay.wait().await.unwrap();
    let moved = s.queue_depth(&s.provisioned.queue_url).await;
    assert!(moved < N as u64, "killed before the end ({moved} moved)");

    // Messages the killed run held become visible again; a second run finishes the job.
    let (code, out) = tokio::time::timeout(Duration::from_secs(200), async {
        loop {
            let (code, out) = run(&s, &["dlq", "replay"], None).await;
            if s.queue_depth(&dlq).await == 0 || code != 0 {
                return (code, out);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
    .expect("the DLQ empties once held messages are visible again");
    assert_eq!(code, 0, "{out}");

    drain(&s, Mapping::default()).await;
    for t in &targets {
        assert_eq!(s.activities(*t).await.len(), 1, "target {t}");
    }
    assert_eq!(s.item_count().await, N);
    assert_eq!(s.queue_depth(&dlq).await, 0);
}

#[tokio::test]
async fn publish_sends_the_good_lines_and_names_the_bad_ones() {
    let s = provisioned(true).await;
    let people: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let line = |p: &Uuid| {
        event(
            "PersonCreatedEvent",
            *p,
            Value::Null,
            json!({"firstName": "Sue"}),
        )
        .to_string()
    };
    let file = tempfile_path::write(
        "events.ndjson",
        &format!(
            "{}\n{{\"id\": 1}}\n{}\n\n{}\n{}\n",
            line(&people[0]),
            line(&people[1]),
            event("WidgetCreatedEvent", Uuid::new_v4(), Value::Null, json!({})),
            line(&people[2]),
        ),
    );
    let topic = s.provisioned.topic("person").unwrap().to_owned();
    let (code, out) = run(
        &s,
        &["publish", "--topic", &topic, file.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(code, 2, "bad lines make the exit code 2: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["published"], 3);
    let bad: Vec<(u64, String)> = report["badLines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["line"].as_u64().unwrap(),
                b["reason_class"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        vec![(2, "malformed".to_owned()), (5, "unmapped".to_owned())]
    );
    assert!(
        report["badLines"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("`id`")
    );

    drain(&s, Mapping::default()).await;
    for p in &people {
        assert_eq!(s.activities(*p).await.len(), 1);
    }
}
