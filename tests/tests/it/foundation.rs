//! The local stack provisions, and an activity written through the real SDK
//! reads back the same.

use aws_sdk_dynamodb::types::AttributeValue;
use domain::{Mapping, Outcome, item, table, transform};
use integration_tests::{dynamodb, event, sns, sqs, stack, unique};
use listener::provision::{self, DOMAINS, Spec};

fn person_update() -> serde_json::Value {
    event(
        "PersonUpdatedEvent",
        uuid::Uuid::new_v4(),
        serde_json::json!({ "firstName": "Susan", "title": "Ms", "address": {"line1": "1 High St"} }),
        serde_json::json!({ "firstName": "Susanna", "title": "Ms", "address": {"line1": "2 High St"} }),
    )
}

#[tokio::test]
async fn provisioning_creates_table_topics_queues_and_is_idempotent() {
    let s = stack().await;
    let (ddb, sns, sqs) = (dynamodb(s), sns(s), sqs(s));
    let spec = Spec {
        table: unique("ActivityHistory"),
        prefix: format!("{}-", unique("prov")),
        fifo: true,
    };
    let p = provision::provision(&ddb, &sns, &sqs, &spec).await.unwrap();
    // A second run finds everything and succeeds.
    let again = provision::provision(&ddb, &sns, &sqs, &spec).await.unwrap();
    assert_eq!(again.queue_url, p.queue_url);

    let desc = ddb
        .describe_table()
        .table_name(&spec.table)
        .send()
        .await
        .unwrap();
    let t = desc.table().unwrap();
    let keys: Vec<_> = t
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_owned())
        .collect();
    assert_eq!(keys, ["targetId", "id"]);
    assert_eq!(
        t.local_secondary_indexes()[0].index_name(),
        Some(table::BY_CREATED_AT)
    );
    assert_eq!(
        t.global_secondary_indexes()[0].index_name(),
        Some(table::BY_ID)
    );
    let ttl = ddb
        .describe_time_to_live()
        .table_name(&spec.table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description().unwrap().attribute_name(),
        Some("ttl")
    );

    assert_eq!(p.topics.len(), DOMAINS.len());
    for (_, arn) in &p.topics {
        assert!(arn.ends_with(".fifo"), "{arn}");
        let subs = sns
            .list_subscriptions_by_topic()
            .topic_arn(arn)
            .send()
            .await
            .unwrap();
        let sub = &subs.subscriptions()[0];
        assert_eq!(sub.endpoint(), Some(p.queue_arn.as_str()));
        let attrs = sns
            .get_subscription_attributes()
            .subscription_arn(sub.subscription_arn().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(
            attrs
                .attributes()
                .unwrap()
                .get("RawMessageDelivery")
                .map(String::as_str),
            Some("true")
        );
    }
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&p.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let redrive =
        &attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy];
    let redrive: serde_json::Value = serde_json::from_str(redrive).unwrap();
    assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(3));
}

#[tokio::test]
async fn an_activity_written_through_the_sdk_reads_back_the_same() {
    let s = stack().await;
    let ddb = dynamodb(s);
    let name = unique("ActivityHistory");
    listener::table::create_table(&ddb, &name).await.unwrap();

    let Outcome::Record(records) =
        transform(person_update().to_string().as_bytes(), &Mapping::default()).unwrap()
    else {
        panic!("a person update records an activity")
    };
    let activity = &records[0];
    ddb.put_item()
        .table_name(&name)
        .set_item(Some(item::to_item(activity).unwrap()))
        .send()
        .await
        .unwrap();

    // Read back through the createdAt index, as the API does.
    let out = ddb
        .query()
        .table_name(&name)
        .index_name(table::BY_CREATED_AT)
        .key_condition_expression("targetId = :t")
        .expression_attribute_values(":t", AttributeValue::S(activity.target_id.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.items().len(), 1);
    let back = item::from_item(out.items()[0].clone()).unwrap();
    assert_eq!(&back, activity);
    assert_eq!(
        back.new_data,
        Some(serde_json::json!({"firstName": "Susanna", "address": {"line1": "2 High St"}}))
    );

    // And by id through the ActivityById index.
    let by_id = ddb
        .query()
        .table_name(&name)
        .index_name(table::BY_ID)
        .key_condition_expression("id = :i")
        .expression_attribute_values(":i", AttributeValue::S(activity.id.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.items().len(), 1);
}
