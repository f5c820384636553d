//! Creates the `ActivityHistory` table (docs/contracts.md §3) with its indexes and
//! TTL, from the names in `domain::table`. Used by provisioning, tests and the
//! local run, so every table is created the same way.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use domain::table::{BY_CREATED_AT, BY_ID, TTL_ATTRIBUTE};

/// Why the table could not be created.
#[derive(Debug, thiserror::Error)]
#[error("creating table {table}: {detail}")]
pub struct ProvisionError {
    /// The table name.
    pub table: String,
    /// The service's answer.
    pub detail: String,
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, BuildError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
}

fn attr(name: &str) -> Result<AttributeDefinition, BuildError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
}

type BuildError = aws_sdk_dynamodb::error::BuildError;

/// The two indexes: a target's history by `createdAt` (local) and one activity by
/// its id (global), both projecting every attribute.
fn indexes() -> Result<(LocalSecondaryIndex, GlobalSecondaryIndex), BuildError> {
    let all = Projection::builder()
        .projection_type(ProjectionType::All)
        .build();
    let by_created_at = LocalSecondaryIndex::builder()
        .index_name(BY_CREATED_AT)
        .key_schema(key("targetId", KeyType::Hash)?)
        .key_schema(key("createdAt", KeyType::Range)?)
        .projection(all.clone())
        .build()?;
    let by_id = GlobalSecondaryIndex::builder()
        .index_name(BY_ID)
        .key_schema(key("id", KeyType::Hash)?)
        .projection(all)
        .build()?;
    Ok((by_created_at, by_id))
}

/// Creates the table with its indexes and TTL; an existing table is left as it is.
pub async fn create_table(client: &Client, table: &str) -> Result<(), ProvisionError> {
    let fail = |detail: String| ProvisionError {
        table: table.to_owned(),
        detail,
    };
    let build = |e: BuildError| fail(e.to_string());
    let (by_created_at, by_id) = indexes().map_err(build)?;
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("targetId").map_err(build)?)
        .attribute_definitions(attr("id").map_err(build)?)
        .attribute_definitions(attr("createdAt").map_err(build)?)
        .key_schema(key("targetId", KeyType::Hash).map_err(build)?)
        .key_schema(key("id", KeyType::Range).map_err(build)?)
        .local_secondary_indexes(by_created_at)
        .global_secondary_indexes(by_id)
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => return Ok(()),
        Err(e) => return Err(fail(DisplayErrorContext(e).to_string())),
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(build)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| fail(DisplayErrorContext(e).to_string()))?;
    Ok(())
}
