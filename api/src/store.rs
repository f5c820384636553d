//! The DynamoDB reads behind the routes. Each logs what it ran (table, index, key
//! condition, filter, limit, direction), how many items came back, the capacity it
//! consumed and how long it took, so support staff can explain a slow or empty
//! answer. No item content is logged.

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::token::PageKey;
use domain::{Activity, table};
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{Filters, Order};

/// What the read routes need of the table.
#[derive(Debug, Clone)]
pub struct Store {
    /// The client, built once.
    pub client: aws_sdk_dynamodb::Client,
    /// Table name.
    pub table: String,
}

/// One page of history.
#[derive(Debug, Clone)]
pub struct Page {
    /// At most the page size, in the requested order.
    pub items: Vec<Activity>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageKey>,
}

/// Requests one page may issue while a filter skips items, before it returns what
/// it has with a token to continue: bounds the work of one call.
const MAX_REQUESTS_PER_PAGE: usize = 20;

fn classify<E: std::error::Error + Send + Sync + 'static>(e: SdkError<E>) -> ApiError {
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            ApiError::Unavailable(anyhow::anyhow!(text))
        }
        _ => ApiError::Unexpected(anyhow::anyhow!(text)),
    }
}

/// Decodes items, each with its key exactly as stored (old items may spell GUIDs
/// in another case, and a resume key must match the stored bytes). Takes the
/// items by value: decoding moves their strings instead of copying them.
fn decode_all(items: Vec<HashMap<String, AttributeValue>>) -> Vec<(Activity, PageKey)> {
    let raw = |i: &HashMap<String, AttributeValue>, k: &str| {
        i.get(k).and_then(|v| v.as_s().ok()).cloned()
    };
    items
        .into_iter()
        .filter_map(|i| {
            let key = PageKey {
                id: raw(&i, "id").unwrap_or_default(),
                created_at: raw(&i, "createdAt"),
            };
            match domain::item::from_item(i) {
                Ok(a) => Some((a, key)),
                Err(e) => {
                    // One unreadable item must not hide a target's whole history.
                    tracing::error!(item_id = %key.id, error = %e, "item skipped: it does not decode");
                    None
                }
            }
        })
        .collect()
}

/// What a Query asked for, as the support log records it.
struct QueryLog<'a> {
    index: &'a str,
    key_condition: &'a str,
    filter: &'a str,
    limit: usize,
    direction: &'a str,
    request: usize,
}

impl Default for QueryLog<'_> {
    fn default() -> Self {
        Self {
            index: "",
            key_condition: "",
            filter: "",
            limit: 1,
            direction: "asc",
            request: 1,
        }
    }
}

impl Store {
    /// Logs one Query: what it asked, what came back, what it cost. No item content.
    fn log_query(
        &self,
        q: &QueryLog<'_>,
        out: &aws_sdk_dynamodb::operation::query::QueryOutput,
        started: Instant,
    ) {
        tracing::info!(
            operation = "Query",
            table = %self.table,
            index = q.index,
            key_condition = q.key_condition,
            filter = q.filter,
            limit = q.limit,
            direction = q.direction,
            request = q.request,
            items_returned = out.items().len(),
            items_scanned = out.scanned_count(),
            consumed_capacity = out.consumed_capacity().and_then(|c| c.capacity_units()).unwrap_or(0.0),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "dynamodb query"
        );
    }

    /// A page of `target`'s history through the `createdAt` index.
    pub async fn page(
        &self,
        target: Uuid,
        filters: &Filters,
        start: Option<PageKey>,
        page_size: usize,
    ) -> Result<Page, ApiError> {
        let mut key_condition = "targetId = :t".to_owned();
        let mut values = HashMap::from([(":t".to_owned(), AttributeValue::S(target.to_string()))]);
        match (filters.from, filters.to) {
            (Some(f), Some(t)) => {
                key_condition.push_str(" AND createdAt BETWEEN :from AND :to");
                values.insert(":from".into(), AttributeValue::S(f.to_table_string()));
                values.insert(":to".into(), AttributeValue::S(t.to_table_string()));
            }
            (Some(f), None) => {
                key_condition.push_str(" AND createdAt >= :from");
                values.insert(":from".into(), AttributeValue::S(f.to_table_string()));
            }
            (None, Some(t)) => {
                key_condition.push_str(" AND createdAt <= :to");
                values.insert(":to".into(), AttributeValue::S(t.to_table_string()));
            }
            (None, None) => {}
        }
        let filter = (!filters.types.is_empty()).then(|| {
            let names: Vec<String> = (0..filters.types.len())
                .map(|i| format!(":ty{i}"))
                .collect();
            for (n, t) in names.iter().zip(&filters.types) {
                values.insert(n.clone(), AttributeValue::S(t.as_str().to_owned()));
            }
            format!("#type IN ({})", names.join(", "))
        });
        // One more than the page, to know whether a next page exists without
        // handing out a token that leads to an empty page.
        let want = page_size + 1;
        let mut exclusive = start.map(|k| {
            let mut m = HashMap::from([
                ("targetId".to_owned(), AttributeValue::S(target.to_string())),
                ("id".to_owned(), AttributeValue::S(k.id)),
            ]);
            if let Some(c) = k.created_at {
                m.insert("createdAt".into(), AttributeValue::S(c));
            }
            m
        });
        let mut items: Vec<(Activity, PageKey)> = Vec::new();
        let mut last_evaluated = None;
        for request in 1..=MAX_REQUESTS_PER_PAGE {
            let started = Instant::now();
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(table::BY_CREATED_AT)
                .key_condition_expression(&key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(filters.order == Order::Asc)
                .limit((want - items.len()).max(1) as i32)
                .set_exclusive_start_key(exclusive.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            if let Some(f) = &filter {
                q = q
                    .filter_expression(f)
                    .expression_attribute_names("#type", "type");
            }
            let mut out = q.send().await.map_err(classify)?;
            self.log_query(
                &QueryLog {
                    index: table::BY_CREATED_AT,
                    key_condition: &key_condition,
                    filter: filter.as_deref().unwrap_or(""),
                    limit: (want - items.len()).max(1),
                    direction: if filters.order == Order::Asc {
                        "asc"
                    } else {
                        "desc"
                    },
                    request,
                },
                &out,
                started,
            );
            last_evaluated = out.last_evaluated_key.take();
            items.extend(decode_all(out.items.take().unwrap_or_default()));
            if items.len() >= want || last_evaluated.is_none() {
                break;
            }
            exclusive = last_evaluated.clone();
        }
        let next = if items.len() > page_size {
            items.truncate(page_size);
            items.last().map(|(_, k)| k.clone())
        } else {
            // Either the end, or the request budget ran out while a filter skipped
            // items: then resume where DynamoDB stopped.
            last_evaluated.and_then(|k| {
                Some(PageKey {
                    id: k.get("id")?.as_s().ok()?.clone(),
                    created_at: k.get("createdAt").and_then(|v| v.as_s().ok()).cloned(),
                })
            })
        };
        Ok(Page {
            items: items.into_iter().map(|(a, _)| a).collect(),
            next,
        })
    }

    /// Whether the target has any activity at all (one key-only read).
    pub async fn has_any(&self, target: Uuid) -> Result<bool, ApiError> {
        let started = Instant::now();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("targetId = :t")
            .expression_attribute_values(":t", AttributeValue::S(target.to_string()))
            .projection_expression("id")
            .limit(1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        self.log_query(
            &QueryLog {
                key_condition: "targetId = :t",
                ..QueryLog::default()
            },
            &out,
            started,
        );
        Ok(!out.items().is_empty())
    }

    /// One activity by its id, through the `ActivityById` index.
    pub async fn by_id(&self, id: Uuid) -> Result<Option<Activity>, ApiError> {
        let started = Instant::now();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::BY_ID)
            .key_condition_expression("id = :i")
            .expression_attribute_values(":i", AttributeValue::S(id.to_string()))
            .limit(1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        self.log_query(
            &QueryLog {
                index: table::BY_ID,
                key_condition: "id = :i",
                ..QueryLog::default()
            },
            &out,
            started,
        );
        Ok(decode_all(out.items.unwrap_or_default())
            .into_iter()
            .next()
            .map(|(a, _)| a))
    }

    /// Checks the table answers (health check).
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                ApiError::Unavailable(anyhow::anyhow!(
                    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
                ))
            })
    }
}
