//! Reading history in more ways, over events sent through the real listener:
//! an entity as it was, several targets as one history, and filters by field,
//! author, domain and target type. Items in the old service's format are put in
//! the table as that service wrote them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use domain::{Activity, ActivityType, Author, Mapping, Timestamp, item};
use integration_tests::table::{App, get, get_text};
use integration_tests::{TestStack, event, hs256_token, provisioned};
use listener::worker::poll_once;
use serde_json::{Value, json};
use uuid::Uuid;

const LIST: &str = "/api/v1/activityhistory";

/// An event at a given time.
fn at(event_type: &str, entity: Uuid, time: &str, old: Value, new: Value) -> Value {
    let mut e = event(event_type, entity, old, new);
    e["dateTime"] = json!(time);
    e
}

/// Sends the events to the queue and runs the listener until the table holds
/// `records` records.
async fn through_listener(s: &TestStack, events: &[Value], records: usize) {
    let bodies: Vec<String> = events.iter().map(Value::to_string).collect();
    for chunk in bodies.chunks(10) {
        s.send_batch(&s.provisioned.queue_url, chunk).await;
    }
    let (p, cfg) = (s.processor(Mapping::default()), s.worker_config());
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.item_count().await < records {
        assert!(
            Instant::now() < deadline,
            "the listener did not record {records} records"
        );
        poll_once(&p, &s.sqs, &cfg).await.unwrap();
    }
}

/// An item as the old service wrote it: whole old and new data, no change list,
/// no provenance, none of the attributes the filters query.
fn old_service_item(
    target: Uuid,
    t: ActivityType,
    time: &str,
    old: Value,
    new: Value,
) -> item::Item {
    let a = Activity {
        id: Uuid::new_v4(),
        target_id: target,
        target_type: "person".into(),
        activity_type: t,
        created_at: Timestamp::parse(time).unwrap(),
        old_data: Some(old).filter(|v| !v.is_null()),
        new_data: Some(new).filter(|v| !v.is_null()),
        changes: None,
        author: Author {
            full_name: "Old Writer".into(),
            email: "Old.Writer@example.gov.uk".into(),
        },
        source_domain: "Person".into(),
        ttl: None,
        provenance: None,
        truncated: false,
    };
    let mut item = item::to_item(&a).unwrap();
    for derived in [domain::search::AUTHOR_EMAIL, domain::search::SOURCE_DOMAIN] {
        item.remove(derived);
    }
    item
}

async fn put(s: &TestStack, items: Vec<item::Item>) {
    for i in items {
        (s.dynamodb.put_item())
            .table_name(&s.provisioned.table)
            .set_item(Some(i))
            .send()
            .await
            .unwrap();
    }
}

struct Reader {
    app: App,
    token: String,
}

impl Reader {
    async fn new(s: &TestStack) -> Self {
        Self {
            app: s.api_app(None).await,
            token: hs256_token(json!({})),
        }
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        get(&self.app, &self.token, uri).await
    }

    async fn state(&self, target: Uuid, at: Option<&str>) -> (u16, Value) {
        let at = at.map(|a| format!("&at={a}")).unwrap_or_default();
        self.get(&format!("{LIST}/state?targetId={target}{at}"))
            .await
    }

    /// Every record of a (possibly merged) history, following `nextToken`.
    async fn walk(&self, query: &str) -> (Vec<Value>, usize) {
        let (mut all, mut pages, mut token) = (Vec::new(), 0, None::<String>);
        loop {
            let t = token
                .map(|t| format!("&paginationToken={t}"))
                .unwrap_or_default();
            let (status, page) = self.get(&format!("{LIST}?{query}{t}")).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            all.extend(page["results"].as_array().unwrap().iter().cloned());
            token = page["paginationDetails"]["nextToken"]
                .as_str()
                .map(str::to_owned);
            if token.is_none() {
                return (all, pages);
            }
        }
    }

    /// The ids a filtered history returns.
    async fn ids(&self, query: &str) -> HashSet<String> {
        let (records, _) = self.walk(query).await;
        records
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn person() -> Value {
    json!({ "firstName": "Susan", "surname": "Fox", "phone": "0207 111", "phones": ["0207 111"],
            "address": { "line1": "1 High St", "postcode": "E8 1AA" } })
}

#[tokio::test]
async fn an_entity_reads_as_it_was_at_each_moment() {
    let s = provisioned(false).await;
    let (p, updates_only, contact) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut renamed = person();
    renamed["firstName"] = json!("Susanna");
    let mut moved = renamed.clone();
    moved["address"]["postcode"] = json!("E8 2BB");
    moved["phones"] = json!(["0207 222", "0207 333"]);
    let events = [
        at(
            "PersonCreatedEvent",
            p,
            "2024-01-10T10:00:00Z",
            Value::Null,
            person(),
        ),
        at(
            "PersonUpdatedEvent",
            p,
            "2024-02-10T10:00:00Z",
            person(),
            renamed.clone(),
        ),
        at(
            "PersonUpdatedEvent",
            p,
            "2024-03-10T10:00:00Z",
            renamed.clone(),
            moved.clone(),
        ),
        at(
            "PersonUpdatedEvent",
            updates_only,
            "2024-01-10T10:00:00Z",
            json!({"a": 1}),
            json!({"a": 2, "b": 3}),
        ),
        at(
            "ContactDetailAddedEvent",
            contact,
            "2024-01-10T10:00:00Z",
            Value::Null,
            json!({"value": "0207 111"}),
        ),
        at(
            "ContactDetailDeletedEvent",
            contact,
            "2024-02-10T10:00:00Z",
            json!({"value": "0207 111"}),
            Value::Null,
        ),
    ];
    through_listener(&s, &events, 6).await;
    let r = Reader::new(&s).await;

    let (status, body) = r.state(p, Some("2024-01-01")).await;
    assert_eq!(status, 404, "before its creation: {body}");
    let (_, created) = r.state(p, Some("2024-01-15")).await;
    assert_eq!(
        (&created["state"], &created["complete"]),
        (&person(), &json!(true))
    );
    assert_eq!(created["activities"], 1);
    assert_eq!(created["targetType"], "person");
    let (_, after_rename) = r.state(p, Some("2024-02-15T00:00:00Z")).await;
    assert_eq!(after_rename["state"], renamed);
    let (_, after_move) = r.state(p, Some("2024-03-10")).await;
    assert_eq!(
        after_move["state"]["address"],
        json!({"line1": "1 High St", "postcode": "E8 2BB"}),
        "the sibling line1 kept"
    );
    assert_eq!(
        after_move["state"]["phones"],
        json!(["0207 222", "0207 333"]),
        "arrays replaced whole"
    );
    let (_, now) = r.state(p, None).await;
    assert_eq!((&now["state"], &now["activities"]), (&moved, &json!(3)));
    assert_eq!(now["lastChangedAt"], "2024-03-10T10:00:00.0000000Z");

    let (_, partial) = r.state(updates_only, None).await;
    assert_eq!(
        (&partial["state"], &partial["complete"]),
        (&json!({"a": 2, "b": 3}), &json!(false))
    );
    let (_, deleted) = r.state(contact, None).await;
    assert_eq!(
        (&deleted["state"], &deleted["deleted"]),
        (&Value::Null, &json!(true))
    );

    for bad in ["1899-12-31", "yesterday"] {
        let (status, body) = r.state(p, Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn items_of_the_old_service_fold_and_filter_too() {
    let s = provisioned(false).await;
    let target = Uuid::new_v4();
    let first = json!({"status": "active", "phone": "1"});
    let second = json!({"status": "active", "phone": "2"});
    put(
        &s,
        vec![
            old_service_item(
                target,
                ActivityType::Create,
                "2021-01-01T00:00:00Z",
                Value::Null,
                first.clone(),
            ),
            old_service_item(
                target,
                ActivityType::Update,
                "2021-02-01T00:00:00Z",
                first,
                second.clone(),
            ),
        ],
    )
    .await;
    let r = Reader::new(&s).await;
    let (status, folded) = r.state(target, None).await;
    assert_eq!(status, 200, "{folded}");
    assert_eq!(
        (&folded["state"], &folded["complete"]),
        (&second, &json!(true))
    );
    let (phone, _) = r.walk(&format!("targetId={target}&field=phone")).await;
    assert_eq!(
        phone.len(),
        2,
        "the create set the phone, the update changed it"
    );
    let (status_changes, _) = r
        .walk(&format!("targetId={target}&field=status&type=update"))
        .await;
    assert!(
        status_changes.is_empty(),
        "the update did not change the status"
    );
    let (by_author, _) = r
        .walk(&format!(
            "targetId={target}&author=old.writer@EXAMPLE.gov.uk"
        ))
        .await;
    assert_eq!(by_author.len(), 2);
    let (by_domain, _) = r.walk(&format!("targetId={target}&domain=PERSON")).await;
    assert_eq!(by_domain.len(), 2);
    let (status, none) = r
        .get(&format!("{LIST}?targetId={target}&field=nothingLikeThis"))
        .await;
    assert_eq!(
        (status, none["results"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{none}"
    );
}

#[tokio::test]
async fn two_targets_merge_into_one_history_with_every_record_once_in_order() {
    let s = provisioned(false).await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut events = Vec::new();
    for i in 0..5 {
        let time = format!("2024-03-0{}T10:00:00Z", i + 1);
        events.push(at(
            "PersonUpdatedEvent",
            a,
            &time,
            json!({"n": i}),
            json!({"n": i + 1}),
        ));
        if i < 4 {
            // The same times on both targets: ties are broken by id.
            events.push(at(
                "PersonUpdatedEvent",
                b,
                &time,
                json!({"n": i}),
                json!({"n": i + 1}),
            ));
        }
    }
    through_listener(&s, &events, 9).await;
    let r = Reader::new(&s).await;

    let (merged, pages) = r
        .walk(&format!("targetId={a}&targetId={b}&pageSize=4"))
        .await;
    assert_eq!((merged.len(), pages), (9, 3));
    let keys: Vec<(String, String)> = merged
        .iter()
        .map(|m| {
            (
                m["createdAt"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(keys, sorted, "newest first, ties by id");
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        9,
        "every record once"
    );
    let on_b = merged.iter().filter(|m| m["targetId"] == json!(b)).count();
    assert_eq!(on_b, 4, "each with its targetId");
    let (mut oldest_first, _) = r
        .walk(&format!("targetId={a}&targetId={b}&pageSize=4&order=asc"))
        .await;
    oldest_first.reverse();
    assert_eq!(
        oldest_first, merged,
        "oldest first is the same history reversed"
    );

    // A token continues the same set whichever order the query names it in.
    let (_, first_page) = r
        .get(&format!("{LIST}?targetId={a}&targetId={b}&pageSize=4"))
        .await;
    let next = first_page["paginationDetails"]["nextToken"]
        .as_str()
        .unwrap();
    let (status, second) = r
        .get(&format!(
            "{LIST}?targetId={b}&targetId={a}&pageSize=4&paginationToken={next}"
        ))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["results"].as_array().unwrap()[..], merged[4..8]);

    let (_, first) = r
        .get(&format!("{LIST}?targetId={a}&targetId={b}&pageSize=4"))
        .await;
    let token = first["paginationDetails"]["nextToken"].as_str().unwrap();
    let (status, body) = r
        .get(&format!(
            "{LIST}?targetId={a}&pageSize=4&paginationToken={token}"
        ))
        .await;
    assert_eq!(status, 400, "a merged token on one target: {body}");
    let (status, _) = r
        .get(&format!(
            "{LIST}?targetId={}&targetId={}",
            Uuid::new_v4(),
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, 404, "none of the targets has a record");
    let (status, _) = r
        .get(&format!("{LIST}?targetId={a}&targetId={}", Uuid::new_v4()))
        .await;
    assert_eq!(status, 200, "one of them has");
}

#[tokio::test]
async fn filters_by_field_author_domain_and_target_type_return_exactly_the_matching_records() {
    let s = provisioned(false).await;
    let (p, tenure, transaction) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut new_phone = person();
    new_phone["phone"] = json!("0207 999");
    let mut phone = at(
        "PersonUpdatedEvent",
        p,
        "2024-02-01T10:00:00Z",
        person(),
        new_phone.clone(),
    );
    phone["user"]["email"] = json!("Ann.Officer@Example.gov.uk");
    let mut new_postcode = new_phone.clone();
    new_postcode["address"]["postcode"] = json!("E8 2BB");
    let mut tenure_created = at(
        "TenureCreatedEvent",
        tenure,
        "2024-01-01T10:00:00Z",
        Value::Null,
        json!({"paymentReference": "1"}),
    );
    tenure_created["sourceDomain"] = json!("Tenure");
    let mut rent = at(
        "TransactionCreatedEvent",
        transaction,
        "2024-01-08T10:00:00Z",
        Value::Null,
        json!({"transactionType": "Rent", "amount": 132.45}),
    );
    (rent["entityTargetId"], rent["sourceDomain"]) = (json!(tenure), json!("Transactions"));
    let events = [
        at(
            "PersonCreatedEvent",
            p,
            "2024-01-01T10:00:00Z",
            Value::Null,
            person(),
        ),
        phone.clone(),
        at(
            "PersonUpdatedEvent",
            p,
            "2024-03-01T10:00:00Z",
            new_phone,
            new_postcode,
        ),
        tenure_created,
        at(
            "PersonAddedToTenureEvent",
            tenure,
            "2024-01-02T10:00:00Z",
            json!({}),
            json!({"householdMembers": [{"id": p}]}),
        ),
        rent,
    ];
    through_listener(&s, &events, 7).await;
    let r = Reader::new(&s).await;
    let (history, _) = r.walk(&format!("targetId={p}&order=asc")).await;
    let id = |i: usize| history[i]["id"].as_str().unwrap().to_owned();
    // Each record says where it came from.
    assert_eq!(history[1]["eventType"], "PersonUpdatedEvent");
    assert_eq!(history[1]["sourceSystem"], "TestAPI");
    assert_eq!(history[1]["correlationId"], phone["correlationId"]);
    let set = |ids: &[String]| ids.iter().cloned().collect::<HashSet<_>>();

    assert_eq!(
        r.ids(&format!("targetId={p}&field=phone")).await,
        set(&[id(0), id(1)])
    );
    assert_eq!(
        r.ids(&format!("targetId={p}&field=phones")).await,
        set(&[id(0)]),
        "a longer name is another field"
    );
    assert_eq!(
        r.ids(&format!("targetId={p}&field=/address/postcode"))
            .await,
        set(&[id(0), id(2)])
    );
    assert_eq!(
        r.ids(&format!("targetId={p}&field=/address")).await,
        set(&[id(0), id(2)])
    );
    assert_eq!(
        r.ids(&format!("targetId={p}&author=ANN.OFFICER@example.GOV.UK"))
            .await,
        set(&[id(1)])
    );
    assert_eq!(
        r.ids(&format!(
            "targetId={p}&author=paul.fox@example.gov.uk&field=phone"
        ))
        .await,
        set(&[id(0)])
    );

    let (on_tenure, _) = r.walk(&format!("targetId={tenure}&order=asc")).await;
    let tid = |i: usize| on_tenure[i]["id"].as_str().unwrap().to_owned();
    assert_eq!(on_tenure.len(), 3);
    assert_eq!(
        r.ids(&format!("targetId={tenure}&domain=transactions"))
            .await,
        set(&[tid(2)])
    );
    assert_eq!(
        r.ids(&format!("targetId={tenure}&targetType=tenurePerson"))
            .await,
        set(&[tid(1)])
    );
    assert_eq!(
        r.ids(&format!("targetId={tenure}&targetType=tenure,tenurePerson"))
            .await
            .len(),
        3
    );
    let (status, body) = r
        .get(&format!("{LIST}?targetId={p}&field=nothingLikeThis"))
        .await;
    assert_eq!(
        (status, body["results"].as_array().map(Vec::len)),
        (200, Some(0)),
        "a filter that matches nothing is empty, not 404"
    );
    // The export takes the same filters, over a merged history too.
    let query =
        format!("targetId={p}&targetId={tenure}&format=ndjson&author=ann.officer@example.gov.uk");
    let (status, export) = get_text(&r.app, &r.token, &format!("{LIST}/export?{query}")).await;
    assert_eq!(status, 200, "{export}");
    let rows: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|row| row["activityId"] == json!(id(1))),
        "{export}"
    );

    // The tenancy's state ignores the transaction its rent record holds.
    let (_, state) = r.state(tenure, None).await;
    assert_eq!(state["state"]["paymentReference"], "1", "{state}");
    assert!(state["state"].get("transactionType").is_none(), "{state}");
}
