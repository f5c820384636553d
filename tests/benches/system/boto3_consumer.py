"""A plain boto3 consumer of the activity queue: what a team would otherwise
write, for the listener benchmark's same-run comparison.

Receive 10 (long poll), parse each event, keep what changed between its old and
new data, batch-write the records (boto3's batch_writer), delete the batch.
Runs until killed. Prints "ready" once its clients are built, so the benchmark
measures the draining and not the interpreter's start.

Endpoints, region and fake credentials come from the standard AWS variables
(AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, ...), all on loopback.
Usage: boto3_consumer.py QUEUE_URL TABLE
"""

import json
import sys
import uuid

import boto3


def changed(old, new):
    """The top-level fields whose values differ, old and new."""
    old, new = old or {}, new or {}
    keys = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys if k in old}, {k: new.get(k) for k in keys if k in new}


def record(event):
    old, new = changed(event["eventData"].get("oldData"), event["eventData"].get("newData"))
    return {
        "targetId": event["entityId"],
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, event["id"])),
        "type": "update",
        "targetType": "person",
        "createdAt": event["dateTime"],
        "authorDetails": {"fullName": event["user"]["name"], "email": event["user"]["email"]},
        "oldData": json.dumps(old),
        "newData": json.dumps(new),
    }


def main():
    queue_url, table_name = sys.argv[1], sys.argv[2]
    sqs = boto3.client("sqs")
    table = boto3.resource("dynamodb").Table(table_name)
    print("ready", flush=True)
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        if not messages:
            continue
        with table.batch_writer() as batch:
            for m in messages:
                batch.put_item(Item=record(json.loads(m["Body"])))
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


if __name__ == "__main__":
    main()
