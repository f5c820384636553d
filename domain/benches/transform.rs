//! The listener's per-event work, parse → map → diff → encode item, against a
//! floor measured in the same run: `serde_json` parsing the same bytes into a
//! `Value` and writing them out again. BENCHMARKS.md reports the ratio.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Mapping, Outcome, transform};
use serde_json::{Value, json};

fn event(event_type: &str, old: Value, new: Value) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "id": "3f0b8f5e-0c7c-4a3e-9b1e-2f1d7f6a9c11",
        "eventType": event_type,
        "sourceDomain": "Person",
        "sourceSystem": "PersonAPI",
        "version": "v1",
        "correlationId": "9a1c3b7e-5d2f-4e8a-b6c4-0e1f2a3b4c5d",
        "dateTime": "2021-09-14T10:02:31.5738462Z",
        "user": { "name": "Paul Fox", "email": "paul.fox@example.gov.uk" },
        "entityId": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
        "eventData": { "oldData": old, "newData": new }
    }))
    .unwrap_or_default()
}

/// A person as the person service publishes it: nested objects and arrays.
fn person(first: &str, phone: &str) -> Value {
    json!({
        "id": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7",
        "title": "Ms", "preferredTitle": "Ms", "firstName": first, "middleName": "Jane", "surname": "Sample",
        "preferredFirstName": first, "preferredSurname": "Sample", "placeOfBirth": "London",
        "dateOfBirth": "1980-04-01T00:00:00", "personTypes": ["Tenant", "HouseholdMember"],
        "reason": null, "versionNumber": 3,
        "tenures": [
            { "id": "5c0e2b3a-94d1-4f6e-8a27-1b3c4d5e6f70", "type": "Secure", "startDate": "2010-01-01", "endDate": null,
              "assetFullAddress": "1 High Street, London, E8 1AA", "paymentReference": "1234567890", "isActive": true },
            { "id": "6d1f3c4b-a5e2-4a7f-9b38-2c4d5e6f7081", "type": "Introductory", "startDate": "2008-01-01", "endDate": "2009-12-31",
              "assetFullAddress": "2 Low Road, London, E9 2BB", "paymentReference": "0987654321", "isActive": false }
        ],
        "contact": { "phone": phone, "email": "sue@example.org", "preferences": { "post": true, "sms": false, "languages": ["en", "tr"] } },
        "identifications": [ { "type": "Passport", "value": "123456789", "isOriginalDocumentSeen": true } ],
        "links": [ { "href": "/api/v1/persons/6f22e9ae", "rel": "self" }, { "href": "/api/v1/tenures/5c0e2b3a", "rel": "tenure" } ],
        "notes": "Prefers contact in the morning."
    })
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let small = event(
        "PersonCreatedEvent",
        Value::Null,
        json!({"id": "6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7", "firstName": "Sue"}),
    );
    let medium = event(
        "PersonUpdatedEvent",
        person("Susan", "020 7946 0000"),
        person("Susanna", "020 7946 0001"),
    );
    let filler: Vec<Value> = (0..400)
        .map(|i| json!({"line": i, "text": "The quick brown fox jumps over the lazy dog", "amount": i as f64 * 1.25}))
        .collect();
    let mut big_old = person("Susan", "0");
    big_old["history"] = Value::Array(filler.clone());
    let mut big_new = person("Susanna", "1");
    big_new["history"] = Value::Array(filler);
    let large = event("PersonUpdatedEvent", big_old, big_new);
    vec![
        ("small create", small),
        ("2 KB person update", medium),
        ("100 KB event", large),
    ]
}

fn bench(c: &mut Criterion) {
    let mapping = Mapping::default();
    for (name, body) in inputs() {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("floor: serde_json parse + write", |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(black_box(&body)).unwrap_or_default();
                black_box(serde_json::to_vec(&v).unwrap_or_default())
            })
        });
        g.bench_function("transform: parse, map, diff, encode item", |b| {
            b.iter(|| match transform(black_box(&body), &mapping) {
                Ok(Outcome::Record(records)) => {
                    for a in &records {
                        black_box(domain::item::to_item(a).ok());
                    }
                }
                other => panic!("benchmark input did not record: {other:?}"),
            })
        });
        g.finish();
    }
}

/// Where the small create's time goes, stage by stage.
fn stages(c: &mut Criterion) {
    let mapping = Mapping::default();
    let (_, body) = inputs().remove(0);
    let mut g = c.benchmark_group("small create stages");
    g.bench_function("1 parse JSON", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(&body)).ok()))
    });
    g.bench_function("2 parse event", |b| {
        b.iter(|| black_box(domain::Event::parse(black_box(&body)).ok()))
    });
    let Ok(event) = domain::Event::parse(&body) else {
        panic!("benchmark input parses")
    };
    g.bench_function("3 map and diff", |b| {
        // The event moves into its records; cloning it is set-up, not measured.
        b.iter_batched(
            || event.clone(),
            |e| black_box(domain::records_from(e, &mapping).ok()),
            BatchSize::SmallInput,
        )
    });
    let Ok(Outcome::Record(records)) = domain::records_from(event.clone(), &mapping) else {
        panic!("records")
    };
    g.bench_function("4 encode item", |b| {
        b.iter(|| black_box(domain::item::to_item(black_box(&records[0])).ok()))
    });
    g.finish();
}

fn sizes() {
    for (name, body) in inputs() {
        eprintln!("input {name}: {} bytes", body.len());
    }
}

fn all(c: &mut Criterion) {
    sizes();
    bench(c);
    stages(c);
}

// The macro defines an undocumented `benches` function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, all);
}
use group::benches;
criterion_main!(benches);
