//! The DynamoDB reads behind the routes. Each logs what it ran (table, index, key
//! condition, filter, limit, direction), how many items came back, the capacity it
//! consumed and how long it took, so support staff can explain a slow or empty
//! answer. No item content is logged. What a caller may not read is left out by
//! the query itself (docs/api.md, Access).

use std::collections::HashMap;
use std::time::Instant;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use domain::token::PageKey;
use domain::{Activity, table};
use uuid::Uuid;

use crate::access::Visible;
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

/// What one read covers: whose history, which part of it, and what the caller
/// may see. The caller's [`Visible`] set is part of every query's filter, so a
/// record the caller may not read is never returned, counted or paged over.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Whose history.
    pub target: Uuid,
    /// The caller's filters and order.
    pub filters: &'a Filters,
    /// The target types the caller may read.
    pub visible: &'a Visible,
}

/// One activity, with its key exactly as stored, so a page can end after it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The activity.
    pub activity: Activity,
    /// Where a page ending here resumes.
    pub key: PageKey,
}

/// One page of history.
#[derive(Debug, Clone)]
pub struct Page {
    /// At most the page size, in the requested order.
    pub entries: Vec<Entry>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageKey>,
    /// Queries the page took, for callers that bound their own total.
    pub requests: usize,
}

/// Requests one page may issue while a filter skips items, before it returns what
/// it has with a token to continue: bounds the work of one call.
pub const MAX_REQUESTS_PER_PAGE: usize = 20;

/// The most items one query asks DynamoDB to evaluate (it stops at 1 MB anyway).
const MAX_LIMIT: usize = 1000;

/// Records one query of a state read asks for.
pub const STATE_PAGE: usize = 100;
/// Queries one state read may make: it folds at most 1,000 records.
pub const STATE_QUERIES: usize = 10;

/// What a state read does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Folds it: the entity's own, and the caller may read it.
    Fold,
    /// Leaves it out and says the state is partial: the caller may not read it.
    Withheld,
    /// Leaves it out: it is about another entity.
    Other,
}

/// The records a state folds.
#[derive(Debug)]
pub struct History {
    /// Oldest first.
    pub records: Vec<Activity>,
    /// Some records were left out, or the read stopped at its bound.
    pub partial: bool,
}

impl History {
    fn of(mut newest_first: Vec<Activity>, partial: bool) -> Self {
        newest_first.reverse();
        Self {
            records: newest_first,
            partial,
        }
    }
}

fn classify<E: std::error::Error + Send + Sync + 'static>(e: SdkError<E>) -> ApiError {
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            ApiError::Unavailable(anyhow::anyhow!(text))
        }
        _ => ApiError::Unexpected(anyhow::anyhow!(text)),
    }
}

type Item = HashMap<String, AttributeValue>;

/// Decodes items, each with its key exactly as stored (old items may spell GUIDs
/// in another case, and a resume key must match the stored bytes). Takes the
/// items by value: decoding moves their strings instead of copying them.
fn decode_all(items: Vec<Item>) -> Vec<Entry> {
    let raw = |i: &Item, k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
    items
        .into_iter()
        .filter_map(|i| {
            let key = PageKey {
                id: raw(&i, "id").unwrap_or_default(),
                created_at: raw(&i, "createdAt"),
            };
            match domain::item::from_item(i) {
                Ok(activity) => Some(Entry { activity, key }),
                Err(e) => {
                    // One unreadable item must not hide a target's whole history.
                    tracing::error!(item_id = %key.id, error = %e, "item skipped: it does not decode");
                    None
                }
            }
        })
        .collect()
}

/// The query's filter already left out what the caller may not read; this checks
/// again in code, so a mistake in an expression can never show a hidden record.
fn keep_visible(entries: Vec<Entry>, visible: &Visible) -> Vec<Entry> {
    let before = entries.len();
    let kept: Vec<Entry> = entries
        .into_iter()
        .filter(|e| visible.allows(&e.activity.target_type))
        .collect();
    if kept.len() != before {
        tracing::error!(
            dropped = before - kept.len(),
            "the query returned records outside the caller's access; they were withheld"
        );
    }
    kept
}

/// A query's conditions and the placeholders they use.
#[derive(Debug, Default)]
struct Conditions {
    key_condition: String,
    filter: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Conditions {
    fn new(key_condition: &str, name: &str, value: String) -> Self {
        Self {
            key_condition: key_condition.to_owned(),
            values: HashMap::from([(name.to_owned(), AttributeValue::S(value))]),
            ..Self::default()
        }
    }

    /// Adds `#attribute IN (...)` over `values`, with placeholders `:{prefix}N`.
    fn one_of<'v>(&mut self, attribute: &str, prefix: &str, values: impl Iterator<Item = &'v str>) {
        let placeholders: Vec<String> = values
            .enumerate()
            .map(|(i, v)| {
                let p = format!(":{prefix}{i}");
                self.values
                    .insert(p.clone(), AttributeValue::S(v.to_owned()));
                p
            })
            .collect();
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.filter
            .push(format!("#{attribute} IN ({})", placeholders.join(", ")));
    }

    /// Limits the query to what the caller may read.
    fn visible(&mut self, visible: &Visible) {
        if let Some(types) = visible.only() {
            self.one_of("targetType", "tt", types.iter().map(String::as_str));
        }
    }

    /// The key condition on `createdAt` and the filters of a history read.
    fn of(scope: &Scope<'_>) -> Self {
        let mut c = Self::new("targetId = :t", ":t", scope.target.to_string());
        let f = scope.filters;
        let mut bound = |name: &str, t: domain::Timestamp| {
            c.values
                .insert(name.into(), AttributeValue::S(t.to_table_string()));
        };
        let range = match (f.from, f.to) {
            (Some(from), Some(to)) => {
                bound(":from", from);
                bound(":to", to);
                " AND createdAt BETWEEN :from AND :to"
            }
            (Some(from), None) => {
                bound(":from", from);
                " AND createdAt >= :from"
            }
            (None, Some(to)) => {
                bound(":to", to);
                " AND createdAt <= :to"
            }
            (None, None) => "",
        };
        c.key_condition.push_str(range);
        if !f.types.is_empty() {
            c.one_of("type", "ty", f.types.iter().map(|t| t.as_str()));
        }
        if !f.target_types.is_empty() {
            c.one_of(
                "targetType",
                "tf",
                f.target_types.iter().map(String::as_str),
            );
        }
        c.search(f);
        c.visible(scope.visible);
        c
    }

    /// The field, author and domain filters, on the attributes the listener
    /// writes for them. A record without the attribute (written before it
    /// existed) passes here and is decided by [`Filters::matches`].
    fn search(&mut self, f: &Filters) {
        use domain::search::{
            ANY_PATH, AUTHOR_EMAIL, CHANGED_PATHS, SOURCE_DOMAIN, with_ancestors,
        };
        let mut equal_or_absent = |attribute: &str, placeholder: &str, value: &str| {
            self.names
                .insert(format!("#{attribute}"), attribute.to_owned());
            self.values
                .insert(placeholder.to_owned(), AttributeValue::S(value.to_owned()));
            self.filter.push(format!(
                "(#{attribute} = {placeholder} OR attribute_not_exists(#{attribute}))"
            ));
        };
        if let Some(author) = &f.author {
            equal_or_absent(AUTHOR_EMAIL, ":au", author);
        }
        if let Some(domain) = &f.domain {
            equal_or_absent(SOURCE_DOMAIN, ":sd", domain);
        }
        let Some(field) = &f.field else {
            return;
        };
        self.names
            .insert(format!("#{CHANGED_PATHS}"), CHANGED_PATHS.to_owned());
        let mut any = vec![format!("attribute_not_exists(#{CHANGED_PATHS})")];
        for (i, path) in with_ancestors(field)
            .into_iter()
            .chain([ANY_PATH])
            .enumerate()
        {
            let p = format!(":fp{i}");
            self.values
                .insert(p.clone(), AttributeValue::S(path.to_owned()));
            any.push(format!("contains(#{CHANGED_PATHS}, {p})"));
        }
        self.filter.push(format!("({})", any.join(" OR ")));
    }

    fn filter_expression(&self) -> Option<String> {
        (!self.filter.is_empty()).then(|| self.filter.join(" AND "))
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }
}

/// The `ExclusiveStartKey` that resumes after `k` on the `createdAt` index.
fn start_key(target: Uuid, k: PageKey) -> Item {
    let mut m = HashMap::from([
        ("targetId".to_owned(), AttributeValue::S(target.to_string())),
        ("id".to_owned(), AttributeValue::S(k.id)),
    ]);
    if let Some(c) = k.created_at {
        m.insert("createdAt".into(), AttributeValue::S(c));
    }
    m
}

/// Where DynamoDB stopped, as a page key.
fn resume_key(k: Item) -> Option<PageKey> {
    Some(PageKey {
        id: k.get("id")?.as_s().ok()?.clone(),
        created_at: k.get("createdAt").and_then(|v| v.as_s().ok()).cloned(),
    })
}

/// Cuts what was read to the page: one more item than the page was read to know
/// a next page exists, and then the page resumes after its own last item.
fn finish(
    mut entries: Vec<Entry>,
    last_evaluated: Option<Item>,
    size: usize,
    requests: usize,
) -> Page {
    let next = if entries.len() > size {
        entries.truncate(size);
        entries.last().map(|e| e.key.clone())
    } else {
        // Either the end, or the request budget ran out while a filter skipped
        // items: then resume where DynamoDB stopped.
        last_evaluated.and_then(resume_key)
    };
    Page {
        entries,
        next,
        requests,
    }
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

    /// A page of history through the `createdAt` index, within the usual budget
    /// of requests.
    pub async fn page(
        &self,
        scope: &Scope<'_>,
        start: Option<PageKey>,
        size: usize,
    ) -> Result<Page, ApiError> {
        self.read(scope, start, size, MAX_REQUESTS_PER_PAGE).await
    }

    /// A page of history in at most `max_requests` queries (at least one). While
    /// a filter skips items the query continues, so a page stays full; once items
    /// were skipped each query also evaluates as many more as were skipped, so rare
    /// matches are found in few requests.
    pub async fn read(
        &self,
        scope: &Scope<'_>,
        start: Option<PageKey>,
        size: usize,
        max_requests: usize,
    ) -> Result<Page, ApiError> {
        let c = Conditions::of(scope);
        // One more than the page, to know whether a next page exists without
        // handing out a token that leads to an empty page.
        let want = size + 1;
        let mut exclusive = start.map(|k| start_key(scope.target, k));
        let (mut entries, mut skipped, mut requests) = (Vec::new(), 0, 0);
        let mut last_evaluated = None;
        while requests < max_requests.max(1) {
            requests += 1;
            let limit = (want.saturating_sub(entries.len()) + skipped).min(MAX_LIMIT);
            let entries_before = entries.len();
            let mut out = self
                .query_history(&c, scope.filters.order, limit, exclusive.take(), requests)
                .await?;
            skipped += usize::try_from(out.scanned_count() - out.count()).unwrap_or(0);
            last_evaluated = out.last_evaluated_key.take();
            let read = decode_all(out.items.take().unwrap_or_default());
            let read = keep_visible(read, scope.visible);
            let before = read.len();
            let kept = read
                .into_iter()
                .filter(|e| scope.filters.matches(&e.activity));
            entries.extend(kept);
            skipped += before - (entries.len() - entries_before);
            if entries.len() >= want || last_evaluated.is_none() {
                break;
            }
            exclusive = last_evaluated.clone();
        }
        Ok(finish(entries, last_evaluated, size, requests))
    }

    /// One query of a history read, logged.
    async fn query_history(
        &self,
        c: &Conditions,
        order: Order,
        limit: usize,
        start: Option<Item>,
        request: usize,
    ) -> Result<aws_sdk_dynamodb::operation::query::QueryOutput, ApiError> {
        let started = Instant::now();
        let filter = c.filter_expression();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::BY_CREATED_AT)
            .key_condition_expression(&c.key_condition)
            .set_filter_expression(filter.clone())
            .set_expression_attribute_names(c.names())
            .set_expression_attribute_values(Some(c.values.clone()))
            .scan_index_forward(order == Order::Asc)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        let direction = if order == Order::Asc { "asc" } else { "desc" };
        let q = QueryLog {
            index: table::BY_CREATED_AT,
            key_condition: &c.key_condition,
            filter: filter.as_deref().unwrap_or(""),
            limit,
            direction,
            request,
        };
        self.log_query(&q, &out, started);
        Ok(out)
    }

    /// The records a state as of `at` folds, oldest first: read newest first from
    /// `at` back to the last create, migrate or delete (nothing before one changes
    /// the state), within [`STATE_QUERIES`] queries of [`STATE_PAGE`] records.
    /// `keep` decides each record ([`Keep`]). `History::partial` says whether one
    /// was withheld, or the bound was hit.
    pub async fn history_for_state(
        &self,
        target: Uuid,
        at: domain::Timestamp,
        keep: &(dyn Fn(&Activity) -> Keep + Sync),
    ) -> Result<History, ApiError> {
        use domain::ActivityType as T;
        let filters = Filters {
            to: Some(at),
            ..Filters::default()
        };
        let scope = Scope {
            target,
            filters: &filters,
            visible: &Visible::All,
        };
        let (mut newest_first, mut partial, mut start) = (Vec::new(), false, None);
        for _ in 0..STATE_QUERIES {
            let page = self.read(&scope, start, STATE_PAGE, 1).await?;
            for e in page.entries {
                match keep(&e.activity) {
                    Keep::Fold => {}
                    Keep::Withheld => {
                        partial = true;
                        continue;
                    }
                    Keep::Other => continue,
                }
                let base = matches!(e.activity.activity_type, T::Create | T::Migrate | T::Delete);
                newest_first.push(e.activity);
                if base {
                    return Ok(History::of(newest_first, partial));
                }
            }
            match page.next {
                Some(k) => start = Some(k),
                None => return Ok(History::of(newest_first, partial)),
            }
        }
        Ok(History::of(newest_first, true))
    }

    /// Up to `n` of the target's oldest records (one query).
    pub async fn oldest(&self, target: Uuid, n: usize) -> Result<Vec<Activity>, ApiError> {
        let filters = Filters {
            order: Order::Asc,
            ..Filters::default()
        };
        let scope = Scope {
            target,
            filters: &filters,
            visible: &Visible::All,
        };
        let page = self.read(&scope, None, n, 1).await?;
        Ok(page.entries.into_iter().map(|e| e.activity).collect())
    }

    /// Whether the target has any activity the caller may read.
    pub async fn has_any(&self, target: Uuid, visible: &Visible) -> Result<bool, ApiError> {
        if visible.only().is_some() {
            // Hidden records may come first: page past them as a read would.
            let filters = Filters::default();
            let scope = Scope {
                target,
                filters: &filters,
                visible,
            };
            return Ok(!self.page(&scope, None, 1).await?.entries.is_empty());
        }
        // Everything is visible: one key-only read answers.
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

    /// One activity by its id, through the `ActivityById` index, when the caller
    /// may read it.
    pub async fn by_id(&self, id: Uuid, visible: &Visible) -> Result<Option<Activity>, ApiError> {
        let mut c = Conditions::new("id = :i", ":i", id.to_string());
        c.visible(visible);
        let filter = c.filter_expression();
        let started = Instant::now();
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::BY_ID)
            .key_condition_expression(&c.key_condition)
            .set_filter_expression(filter.clone())
            .set_expression_attribute_names(c.names())
            .set_expression_attribute_values(Some(c.values.clone()))
            .limit(1)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(classify)?;
        let q = QueryLog {
            index: table::BY_ID,
            key_condition: &c.key_condition,
            filter: filter.as_deref().unwrap_or(""),
            ..QueryLog::default()
        };
        self.log_query(&q, &out, started);
        let entries = keep_visible(decode_all(out.items.unwrap_or_default()), visible);
        Ok(entries.into_iter().next().map(|e| e.activity))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(query: &str) -> Conditions {
        let q = crate::params::ListQuery::parse(Some(query)).unwrap();
        let scope = Scope {
            target: q.target_id,
            filters: &q.filters,
            visible: &Visible::All,
        };
        Conditions::of(&scope)
    }

    const T: &str = "targetId=6f22e9ae-3e8a-4e0e-af46-db02eb87f8e7";

    fn value(c: &Conditions, name: &str) -> String {
        c.values[name].as_s().unwrap().clone()
    }

    #[test]
    fn a_field_filter_asks_for_the_field_its_ancestors_or_a_record_without_paths() {
        let c = conditions(&format!("{T}&field=/address/postcode"));
        let filter = c.filter_expression().unwrap();
        assert_eq!(
            filter,
            "(attribute_not_exists(#changedPaths) OR contains(#changedPaths, :fp0) OR contains(#changedPaths, :fp1) OR contains(#changedPaths, :fp2))"
        );
        let asked: Vec<String> = ["fp0", "fp1", "fp2"]
            .map(|p| value(&c, &format!(":{p}")))
            .into();
        assert_eq!(asked, ["/address", "/address/postcode", "*"]);
    }

    #[test]
    fn author_and_domain_filters_ask_for_the_lower_case_attributes() {
        let c = conditions(&format!(
            "{T}&author=Ann.Officer@Example.gov.uk&domain=Transactions"
        ));
        let filter = c.filter_expression().unwrap();
        assert!(
            filter.contains("(#authorEmailLower = :au OR attribute_not_exists(#authorEmailLower))"),
            "{filter}"
        );
        assert!(
            filter
                .contains("(#sourceDomainLower = :sd OR attribute_not_exists(#sourceDomainLower))"),
            "{filter}"
        );
        assert_eq!(value(&c, ":au"), "ann.officer@example.gov.uk");
        assert_eq!(value(&c, ":sd"), "transactions");
    }

    #[test]
    fn no_filter_asks_for_nothing() {
        assert_eq!(conditions(T).filter_expression(), None);
    }
}
