//! Who reads what, the access log, and how much one answer holds: the API over
//! DynamoDB Local through the real router, with the access file of docs/api.md.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::access::{Limits, Policy, Rules};
use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use domain::{Mapping, Outcome, item, transform};
use integration_tests::hs256_token;
use integration_tests::table::{App, TableOnly, table_only};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

/// The access file of docs/api.md.
const RULES: &str = r#"
[groups]
"housing-officers" = ["person", "tenure", "tenurePerson", "contactDetails", "asset", "transaction", "process"]
"equality-team"    = ["personEqualityInformation"]
"support-admins"   = ["*"]
"#;

const LIST: &str = "/api/v1/activityhistory";
const EXPORT: &str = "/api/v1/activityhistory/export";

fn policy(limits: Limits) -> Policy {
    Policy {
        rules: Rules::parse(RULES).unwrap(),
        limits,
    }
}

/// A record on `target` at `at`, of the target type `event_type` maps to.
fn record(target: Uuid, event_type: &str, at: &str, old: Value, new: Value) -> item::Item {
    let mut body = integration_tests::event(event_type, target, old, new);
    body["dateTime"] = json!(at);
    let Outcome::Record(r) = transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    item::to_item(&r[0]).unwrap()
}

/// The `i`-th second of a day, as a `dateTime`: later `i`, later record.
fn at(i: usize) -> String {
    format!("2024-05-01T10:{:02}:{:02}.0000000Z", i / 60, i % 60)
}

fn person(target: Uuid, i: usize) -> item::Item {
    record(
        target,
        "PersonUpdatedEvent",
        &at(i),
        json!({"firstName": format!("Marmaduke{i}")}),
        json!({"firstName": format!("Montgomery{i}")}),
    )
}

fn equality(target: Uuid, i: usize) -> item::Item {
    record(
        target,
        "EqualityInformationUpdatedEvent",
        &at(i),
        json!({"religionOrBelief": format!("Faith{i}")}),
        json!({"religionOrBelief": format!("Creed{i}")}),
    )
}

/// 24 records on one person, alternating person and equality information, oldest
/// first.
async fn seed_mixed(t: &TableOnly, target: Uuid) {
    let items = (0..24)
        .map(|i| {
            if i % 2 == 0 {
                person(target, i)
            } else {
                equality(target, i)
            }
        })
        .collect();
    t.put_items(items).await;
}

/// A caller of the API, with a token for its groups.
struct Reader {
    app: App,
    token: String,
}

impl Reader {
    fn new(app: &App, sub: &str, groups: &[&str]) -> Self {
        Self {
            app: app.clone(),
            token: hs256_token(json!({"sub": sub, "groups": groups})),
        }
    }

    async fn send(&self, uri: &str) -> (u16, HeaderMap, String) {
        let req = Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        let r = self.app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        let (status, _, text) = self.send(uri).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Follows `nextToken` from `uri` to the end: each page's results.
    async fn walk(&self, uri: &str) -> Vec<Vec<Value>> {
        let mut pages = Vec::new();
        let mut next = uri.to_owned();
        loop {
            let (status, body) = self.get(&next).await;
            assert_eq!(status, 200, "{next}: {body}");
            pages.push(body["results"].as_array().unwrap().clone());
            match body["paginationDetails"]["nextToken"].as_str() {
                None => return pages,
                Some(t) => next = format!("{uri}&paginationToken={t}"),
            }
            assert!(pages.len() < 100, "the walk does not end");
        }
    }

    /// Follows the export's `Link: rel="next"` to the end: each part's body.
    async fn export_parts(&self, uri: &str) -> Vec<String> {
        let mut parts = Vec::new();
        let mut next = Some(uri.to_owned());
        while let Some(uri) = next.take() {
            let (status, headers, text) = self.send(&uri).await;
            assert_eq!(status, 200, "{uri}: {text}");
            parts.push(text);
            next = headers.get(header::LINK).map(|l| {
                let l = l.to_str().unwrap();
                let url = l.strip_prefix('<').unwrap().split_once('>').unwrap().0;
                url.strip_prefix("http://localhost").unwrap().to_owned()
            });
            assert!(parts.len() < 100, "the export does not end");
        }
        parts
    }
}

fn field<'a>(r: &'a Value, name: &str) -> &'a str {
    r[name].as_str().unwrap()
}

#[tokio::test]
async fn each_caller_reads_only_the_target_types_its_groups_list_in_full_pages() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_mixed(&t, target).await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    let url = format!("{LIST}?targetId={target}&pageSize=5");

    for (groups, shown, sizes) in [
        (vec!["housing-officers"], vec!["person"], vec![5, 5, 2]),
        (
            vec!["equality-team"],
            vec!["personEqualityInformation"],
            vec![5, 5, 2],
        ),
        (
            vec!["equality-team", "housing-officers"],
            vec!["person", "personEqualityInformation"],
            vec![5, 5, 5, 5, 4],
        ),
        (
            vec!["support-admins"],
            vec!["person", "personEqualityInformation"],
            vec![5, 5, 5, 5, 4],
        ),
    ] {
        let reader = Reader::new(&app, "reader", &groups);
        let pages = reader.walk(&url).await;
        let got: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(got, sizes, "{groups:?}: every page but the last is full");
        let all: Vec<&Value> = pages.iter().flatten().collect();
        let types: HashSet<&str> = all.iter().map(|r| field(r, "targetType")).collect();
        assert_eq!(types, shown.into_iter().collect(), "{groups:?}");
        let times: Vec<&str> = all.iter().map(|r| field(r, "createdAt")).collect();
        let mut newest_first = times.clone();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        newest_first.dedup();
        assert_eq!(times, newest_first, "{groups:?}: newest first, none twice");
    }

    // The export leaves out the same records.
    let officer = Reader::new(&app, "officer", &["housing-officers"]);
    let (status, _, csv) = officer
        .send(&format!("{EXPORT}?targetId={target}&format=ndjson"))
        .await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = csv
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 12);
    assert!(rows.iter().all(|r| r["targetType"] == "person"), "{csv}");
}

/// An error body without its correlation id and with `id` written as `ID`.
fn generic(body: &Value, id: Uuid) -> Value {
    let mut b = body.clone();
    b.as_object_mut().unwrap().remove("correlationId");
    serde_json::from_str(&b.to_string().replace(&id.to_string(), "ID")).unwrap()
}

#[tokio::test]
async fn records_a_caller_may_not_read_do_not_exist_for_it() {
    let t = table_only().await;
    let (hidden, nothing) = (Uuid::new_v4(), Uuid::new_v4());
    t.put_items((0..3).map(|i| equality(hidden, i)).collect())
        .await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    let officer = Reader::new(&app, "officer", &["housing-officers"]);
    let equality_team = Reader::new(&app, "equality", &["equality-team"]);

    for query in [
        "",
        "&type=update",
        "&from=2024-01-01",
        "&pageSize=1&order=asc",
    ] {
        for route in [LIST, EXPORT] {
            let (status, seen) = officer
                .get(&format!("{route}?targetId={hidden}{query}"))
                .await;
            let (_, none) = officer
                .get(&format!("{route}?targetId={nothing}{query}"))
                .await;
            assert_eq!(status, 404, "{route}{query}: {seen}");
            assert_eq!(
                generic(&seen, hidden),
                generic(&none, nothing),
                "{route}{query}: a hidden history answers as no history"
            );
        }
    }

    let (status, page) = equality_team
        .get(&format!("{LIST}?targetId={hidden}"))
        .await;
    assert_eq!(
        status, 200,
        "the records are there for those who may read them"
    );
    let id: Uuid = field(&page["results"][0], "id").parse().unwrap();
    let unknown = Uuid::new_v4();
    let (status, seen) = officer.get(&format!("{LIST}/{id}")).await;
    let (_, none) = officer.get(&format!("{LIST}/{unknown}")).await;
    assert_eq!(status, 404, "{seen}");
    assert_eq!(generic(&seen, id), generic(&none, unknown));
    let (status, _) = equality_team.get(&format!("{LIST}/{id}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn hundreds_of_hidden_records_neither_hint_at_a_history_nor_hide_a_visible_record() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items((1..=300).map(|i| equality(target, i)).collect())
        .await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    let officer = Reader::new(&app, "officer", &["housing-officers"]);
    let url = format!("{LIST}?targetId={target}");

    // Far more hidden records than one query reads: still no history at all.
    let (status, body) = officer.get(&url).await;
    assert_eq!(status, 404, "{body}");

    // One visible record, older than every hidden one, is found in one page.
    t.put_items(vec![person(target, 0)]).await;
    let (status, body) = officer.get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(body["paginationDetails"]["nextToken"].is_null(), "{body}");
}

#[tokio::test]
async fn a_caller_in_none_of_the_groups_is_refused_without_learning_any() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_mixed(&t, target).await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    for groups in [vec!["finance-staff"], vec![]] {
        let stranger = Reader::new(&app, "stranger", &groups);
        for url in [
            format!("{LIST}?targetId={target}"),
            format!("{LIST}/{}", Uuid::new_v4()),
            format!("{EXPORT}?targetId={target}"),
        ] {
            let (status, body) = stranger.get(&url).await;
            assert_eq!(status, 403, "{url}: {body}");
            assert!(body.get("results").is_none());
            let message = field(&body, "message");
            assert!(message.contains("do not give access"), "{message}");
            for secret in ["housing", "equality", "support", "person", "*"] {
                assert!(!message.contains(secret), "{message} names {secret}");
            }
        }
    }
}

#[tokio::test]
async fn a_page_token_resumes_only_for_a_caller_who_sees_the_same_records() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_mixed(&t, target).await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    let officer = Reader::new(&app, "officer-1", &["housing-officers"]);
    let url = format!("{LIST}?targetId={target}&pageSize=5");
    let (_, first) = officer.get(&url).await;
    let token = field(&first["paginationDetails"], "nextToken").to_owned();
    let next = format!("{url}&paginationToken={token}");

    for groups in [
        vec!["support-admins"],
        vec!["equality-team"],
        vec!["housing-officers", "equality-team"],
    ] {
        let other = Reader::new(&app, "other", &groups);
        let (status, body) = other.get(&next).await;
        assert_eq!(status, 400, "{groups:?}: {body}");
        assert!(
            field(&body, "message").contains("caller with other access"),
            "{body}"
        );
    }
    // Nor does a list token continue an export.
    let (status, _) = officer
        .get(&format!(
            "{EXPORT}?targetId={target}&paginationToken={token}"
        ))
        .await;
    assert_eq!(status, 400);
    // A colleague with the same access may continue it: the token binds what is
    // visible, not who asked.
    let colleague = Reader::new(&app, "officer-2", &["housing-officers"]);
    let (status, body) = colleague.get(&next).await;
    assert_eq!(
        (status, body["results"].as_array().map(Vec::len)),
        (200, Some(5))
    );
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["targetType"] == "person")
    );
}

/// Log lines written on one test's thread while it holds the guard.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// Where this thread's log lines go, while a test captures them.
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// The writer of the one process-wide subscriber: this thread's capture.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(c) = c.borrow().as_ref() {
                c.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops capturing when dropped.
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Captured {
    /// Captures this thread's logs, as JSON as `activity-api` writes them. One
    /// subscriber serves the whole test binary, writing only for threads that
    /// capture: a subscriber set per thread after others logged misses the
    /// events whose interest tracing has already cached.
    fn install(&self) -> CaptureGuard {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::{Layer, filter};
            // Decided per event (which thread logs), never cached per callsite.
            let capturing = filter::DynFilterFn::new(|meta, _| {
                *meta.level() <= tracing::Level::INFO && CAPTURE.with(|c| c.borrow().is_some())
            })
            .with_callsite_filter(|_| tracing::subscriber::Interest::sometimes());
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(|| ThreadCapture)
                .with_filter(capturing);
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("no other subscriber in the test binary");
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
        CaptureGuard
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The access lines' fields, in order.
    fn access(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["target"] == "access")
            .map(|l| l["fields"].clone())
            .collect()
    }
}

#[tokio::test]
async fn every_read_writes_one_access_line_that_holds_no_resident_data() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    seed_mixed(&t, target).await;
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(Limits::default()))
        .await;
    let officer = Reader::new(&app, "officer-7", &["housing-officers"]);
    let stranger = Reader::new(&app, "stranger-3", &["finance-staff"]);
    let (_, page) = officer
        .get(&format!("{LIST}?targetId={target}&pageSize=5"))
        .await;
    let token = field(&page["paginationDetails"], "nextToken").to_owned();
    let id = field(&page["results"][0], "id").to_owned();
    let hidden_id = {
        let admin = Reader::new(&app, "admin", &["support-admins"]);
        let (_, all) = admin
            .get(&format!("{LIST}?targetId={target}&pageSize=1"))
            .await;
        field(&all["results"][0], "id").to_owned()
    };

    let log = Captured::default();
    let guard = log.install();
    let reads: Vec<(&Reader, String)> = vec![
        (
            &officer,
            format!("{LIST}?targetId={target}&pageSize=5&type=update"),
        ),
        (
            &officer,
            format!("{LIST}?targetId={target}&pageSize=5&paginationToken={token}"),
        ),
        (&officer, format!("{LIST}/{id}")),
        (&officer, format!("{EXPORT}?targetId={target}&format=csv")),
        (&officer, format!("{LIST}/{hidden_id}")),
        (&officer, format!("{LIST}?targetId=not-a-guid")),
        (&stranger, format!("{LIST}?targetId={target}")),
    ];
    for (reader, url) in &reads {
        reader.send(url).await;
    }
    drop(guard);

    let lines = log.access();
    let summary: Vec<(String, String, String, String, u64, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["sub"].as_str().unwrap().to_owned(),
                l["route"].as_str().unwrap().to_owned(),
                l["target_id"].as_str().unwrap().to_owned(),
                l["activity_id"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
                l["records"].as_u64().unwrap(),
            )
        })
        .collect();
    let (o, s, tg) = (
        "officer-7".to_owned(),
        "stranger-3".to_owned(),
        target.to_string(),
    );
    let line = |sub: &str, route: &str, target: &str, activity: &str, status, records| {
        (
            sub.to_owned(),
            route.to_owned(),
            target.to_owned(),
            activity.to_owned(),
            status,
            records,
        )
    };
    assert_eq!(
        summary,
        vec![
            line(&o, "list", &tg, "", 200, 5),
            line(&o, "list", &tg, "", 200, 5),
            line(&o, "lookup", &tg, &id, 200, 1),
            line(&o, "export", &tg, "", 200, 12),
            line(&o, "lookup", "", &hidden_id, 404, 0),
            line(&o, "list", "", "", 400, 0),
            line(&s, "list", &tg, "", 403, 0),
        ],
        "one line per read, in order"
    );
    assert!(lines.iter().all(|l| l["log"] == "access"));
    assert!(
        field(&lines[0], "filters").contains("types=update"),
        "{}",
        lines[0]
    );
    assert_eq!(
        (
            lines[0]["continued"].as_bool(),
            lines[1]["continued"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(lines[3]["rows"], 12, "the export's rows");

    // The officer's queries carry its access as a filter: hidden records are left
    // out by DynamoDB, never fetched and dropped.
    let queries: Vec<Value> = log
        .lines()
        .into_iter()
        .filter(|l| l["fields"]["message"] == "dynamodb query")
        .collect();
    assert!(!queries.is_empty());
    assert!(
        queries.iter().all(|q| q["fields"]["filter"]
            .as_str()
            .unwrap()
            .contains("#targetType IN")),
        "{queries:?}"
    );

    let text = log.text();
    for data in [
        "Marmaduke",
        "Montgomery",
        "Faith",
        "Creed",
        "Paul Fox",
        "example.gov.uk",
    ] {
        assert!(!text.contains(data), "the log holds resident data {data:?}");
    }
}

/// `activity-api` run as a process with `access_file`; it is stopped once it
/// listens or has exited. Returns its exit status (None while it was still
/// running) and stderr.
async fn start_api(
    access_file: Option<&std::path::Path>,
) -> (Option<std::process::ExitStatus>, String) {
    use tokio::io::AsyncBufReadExt;
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_it-api"));
    c.env("ACTIVITY_TOKEN_KEY", integration_tests::TOKEN_KEY)
        .env("ACTIVITY_JWT_SECRET", integration_tests::JWT_SECRET)
        .env("ACTIVITY_API_ADDR", "127.0.0.1:0")
        .env("AWS_REGION", integration_tests::REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("RUST_LOG", "info")
        .env_remove("ACTIVITY_ACCESS_FILE")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(f) = access_file {
        c.env("ACTIVITY_ACCESS_FILE", f);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let read = async {
        while let Ok(Some(l)) = lines.next_line().await {
            stderr.push_str(&l);
            stderr.push('\n');
            if l.contains("activity-api listening") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("activity-api neither listened nor exited");
    let status = child.try_wait().unwrap();
    let status = match status {
        Some(s) => Some(s),
        None if stderr.contains("activity-api listening") => None,
        None => Some(child.wait().await.unwrap()),
    };
    (status, stderr)
}

#[tokio::test]
async fn a_bad_access_file_stops_the_api_at_start_naming_the_file_and_the_fault() {
    let dir = std::env::temp_dir();
    let bad = dir.join(format!("access-{}.toml", Uuid::new_v4()));
    std::fs::write(
        &bad,
        "[groups]\n\"housing-officers\" = [\"person\"]\n[typo]\n",
    )
    .unwrap();
    let missing = dir.join(format!("access-{}.toml", Uuid::new_v4()));
    for (file, fault) in [(&bad, "unknown field `typo`"), (&missing, "No such file")] {
        let (status, stderr) = start_api(Some(file)).await;
        let status = status.expect("it stopped");
        assert!(!status.success(), "{stderr}");
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains(fault), "{stderr}");
        assert!(!stderr.contains("activity-api listening"), "{stderr}");
    }
    std::fs::remove_file(&bad).ok();
}

#[tokio::test]
async fn the_api_warns_at_start_when_no_access_rules_are_in_force_and_only_then() {
    let (status, stderr) = start_api(None).await;
    assert_eq!(status, None, "it listens: {stderr}");
    assert!(stderr.contains("no access rules are in force"), "{stderr}");
    assert!(stderr.contains("\"level\":\"WARN\""), "{stderr}");

    let good = std::env::temp_dir().join(format!("access-{}.toml", Uuid::new_v4()));
    std::fs::write(&good, RULES).unwrap();
    let (status, stderr) = start_api(Some(&good)).await;
    std::fs::remove_file(&good).ok();
    assert_eq!(status, None, "it listens: {stderr}");
    assert!(!stderr.contains("no access rules"), "{stderr}");
}

/// `n` person updates of `fields` changed fields each, with values of `size`
/// characters, oldest first.
fn large(target: Uuid, n: usize, fields: usize, size: usize) -> Vec<item::Item> {
    (0..n)
        .map(|i| {
            let value = |tag: &str| -> Value {
                (0..fields)
                    .map(|f| {
                        (
                            format!("field{f}"),
                            json!(format!("{tag}{i}-{}", "x".repeat(size))),
                        )
                    })
                    .collect::<serde_json::Map<String, Value>>()
                    .into()
            };
            record(
                target,
                "PersonUpdatedEvent",
                &at(i),
                value("old"),
                value("new"),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_export_over_its_byte_limit_continues_to_the_end_with_no_row_lost_or_repeated() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    let mut items = large(target, 30, 1, 1000);
    items.extend((100..110).map(|i| equality(target, i))); // hidden from the officer
    t.put_items(items).await;
    let limits = Limits {
        export_bytes: 10_000,
        ..Limits::default()
    };
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(limits))
        .await;
    let officer = Reader::new(&app, "officer", &["housing-officers"]);

    let parts = officer
        .export_parts(&format!("{EXPORT}?targetId={target}&format=csv&order=asc"))
        .await;
    assert!(
        parts.len() >= 6,
        "{} parts: the limit was not reached",
        parts.len()
    );
    let mut rows = Vec::new();
    for p in &parts {
        assert!(p.len() <= 10_000, "a part of {} bytes", p.len());
        let mut r = csv::Reader::from_reader(p.as_bytes());
        assert_eq!(
            &r.headers().unwrap()[0],
            "activityId",
            "every part is a whole CSV file"
        );
        rows.extend(r.records().map(|r| r.unwrap()));
    }
    let times: Vec<String> = rows.iter().map(|r| r[1].to_owned()).collect();
    let expected: Vec<String> = (0..30).map(at).collect();
    assert_eq!(times, expected, "every row once, oldest first");
    assert!(rows.iter().all(|r| &r[3] == "person"));
}

#[tokio::test]
async fn an_export_over_its_row_limit_continues_without_splitting_an_activity() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items(large(target, 10, 3, 10)).await;
    let limits = Limits {
        export_rows: 10,
        ..Limits::default()
    };
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(limits))
        .await;
    let admin = Reader::new(&app, "admin", &["support-admins"]);

    let parts = admin
        .export_parts(&format!("{EXPORT}?targetId={target}&format=ndjson"))
        .await;
    let per_part: Vec<usize> = parts.iter().map(|p| p.lines().count()).collect();
    assert_eq!(
        per_part,
        [9, 9, 9, 3],
        "three activities of three rows fit in ten"
    );
    let rows: Vec<Value> = parts
        .iter()
        .flat_map(|p| p.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: HashSet<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                field(r, "activityId").to_owned(),
                field(r, "path").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        (rows.len(), keys.len()),
        (30, 30),
        "no row lost or repeated"
    );
    let times: Vec<&str> = rows
        .iter()
        .step_by(3)
        .map(|r| field(r, "createdAt"))
        .collect();
    let expected: Vec<String> = (0..10).rev().map(at).collect();
    assert_eq!(times, expected, "newest first across parts");
}

#[tokio::test]
async fn a_page_of_large_records_stops_under_its_byte_limit_and_continues() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    t.put_items(large(target, 20, 1, 1000)).await;
    let limits = Limits {
        page_bytes: 20_000,
        ..Limits::default()
    };
    let app = t
        .app_with(integration_tests::hs256_auth(), policy(limits))
        .await;
    let officer = Reader::new(&app, "officer", &["housing-officers"]);
    let url = format!("{LIST}?targetId={target}&pageSize=100");

    let mut next = url.clone();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, _, text) = officer.send(&next).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.len() <= 20_000, "a page of {} bytes", text.len());
        pages += 1;
        let body: Value = serde_json::from_str(&text).unwrap();
        let results = body["results"].as_array().unwrap();
        assert!(!results.is_empty());
        seen.extend(results.iter().map(|r| field(r, "createdAt").to_owned()));
        match body["paginationDetails"]["nextToken"].as_str() {
            None => break,
            Some(t) => next = format!("{url}&paginationToken={t}"),
        }
    }
    assert!(pages >= 4, "{pages} pages: the limit was not reached");
    let expected: Vec<String> = (0..20).rev().map(at).collect();
    assert_eq!(seen, expected, "every record once, newest first");
}

#[tokio::test]
async fn a_caller_outside_the_allowed_groups_is_refused_and_still_accounted_for() {
    let t = table_only().await;
    let target = Uuid::new_v4();
    let auth = api::auth::AuthConfig {
        allowed_groups: vec!["housing-officers".into()],
        ..integration_tests::hs256_auth()
    };
    let app = t.app_with(auth, policy(Limits::default())).await;
    let outsider = Reader::new(&app, "outsider-9", &["finance-staff"]);

    let log = Captured::default();
    let guard = log.install();
    let (status, _, body) = outsider.send(&format!("{LIST}?targetId={target}")).await;
    drop(guard);

    assert_eq!(status, 403);
    assert!(!body.contains("housing-officers"), "{body}");
    let lines = log.access();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(
        (field(l, "sub"), field(l, "route"), field(l, "target_id")),
        ("outsider-9", "list", target.to_string().as_str())
    );
    assert_eq!(l["status"].as_u64(), Some(403));
    assert_eq!(l["records"].as_u64(), Some(0));
}
