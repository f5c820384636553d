//! The history viewer in a real browser: Debian's Chromium, headless, driven by
//! playwright (tests/browser/viewer_test.py), against the API over a socket and
//! DynamoDB Local, with every host name but loopback unresolvable. The script
//! makes the assertions; this test seeds the history, serves the API and runs it.

use std::process::Stdio;

use domain::{Mapping, Outcome, item, transform};
use integration_tests::table::{TableOnly, table_only};
use integration_tests::{browser, browser_tools, event, hs256_auth, hs256_token};
use serde_json::{Value, json};
use uuid::Uuid;

/// The records `body` makes, as items.
fn items_of(body: &Value) -> Vec<item::Item> {
    let Outcome::Record(records) =
        transform(body.to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("records")
    };
    records.iter().map(|r| item::to_item(r).unwrap()).collect()
}

fn at(mut e: Value, time: &str) -> Value {
    e["dateTime"] = json!(time);
    e
}

/// A tenancy with 25 updates (more than one page of the viewer's 20), its
/// creation, a rent charge, and a person whose name holds markup.
async fn seed(t: &TableOnly, tenure: Uuid, person: Uuid) -> Uuid {
    let mut items = items_of(&at(
        event(
            "TenureCreatedEvent",
            tenure,
            Value::Null,
            json!({"paymentReference": "228000123", "tenureType": "Secure"}),
        ),
        "2024-01-02T10:00:00Z",
    ));
    for i in 0..25u32 {
        let body = event(
            "TenureUpdatedEvent",
            tenure,
            json!({"rentAmount": 100 + i}),
            json!({"rentAmount": 101 + i}),
        );
        items.extend(items_of(&at(
            body,
            &format!("2024-02-{:02}T10:00:00Z", i + 1),
        )));
    }
    let mut rent = event(
        "TransactionCreatedEvent",
        Uuid::new_v4(),
        Value::Null,
        json!({"transactionType": "Rent", "transactionAmount": 132.45, "periodNo": 1, "financialYear": 2024}),
    );
    rent["entityTargetId"] = json!(tenure);
    items.extend(items_of(&at(rent, "2024-07-04T08:00:00Z")));
    let hostile = "<img src=x onerror=\"window.__injected=1\">";
    let renamed = at(
        event(
            "PersonUpdatedEvent",
            person,
            json!({"firstName": "Susan"}),
            json!({"firstName": hostile}),
        ),
        "2024-03-01T09:30:00Z",
    );
    let person_items = items_of(&renamed);
    let permalink = item::item_id(&person_items[0]).unwrap();
    items.extend(person_items);
    t.put_items(items).await;
    permalink
}

#[tokio::test]
async fn the_viewer_shows_histories_as_sentences_in_a_real_browser() {
    let chromium = browser().unwrap_or_else(|e| panic!("{e:#}"));
    let (python, axe) = browser_tools().unwrap_or_else(|e| panic!("{e:#}"));
    let t = table_only().await;
    let (tenure, person) = (Uuid::new_v4(), Uuid::new_v4());
    let permalink = seed(&t, tenure, person).await;
    let api = t.serve_api(hs256_auth()).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/viewer_test.py");
    let screenshot = std::env::var_os("VIEWER_SCREENSHOT");
    let mut c = tokio::process::Command::new(python);
    c.arg(script)
        .env("BASE", &api.base)
        .env("TOKEN", hs256_token(json!({})))
        .env("CHROMIUM", &chromium)
        .env("AXE", &axe)
        .env("TENURE", tenure.to_string())
        .env("PERSON", person.to_string())
        .env("ACTIVITY", permalink.to_string())
        .env("COOKIE", "platformToken")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(path) = screenshot {
        c.env("SCREENSHOT", path);
    }
    let out = c.output().await.unwrap();
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "the viewer's browser test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
