//! `/api/v1/activityhistory`: a target's history in pages (docs/contracts.md §4), one
//! activity by id, and the analysts' export. Each route reads only what the
//! caller may see, bounds what one answer holds, and writes one access-log line.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::token::{self, PageKey, TokenError};
use serde::Serialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::access::{AccessLog, Caller, Limits, Route, Visible};
use crate::error::{ApiError, ErrorBody};
use crate::model::{ActivityJson, ExportRow, PageJson, PaginationDetails};
use crate::params::{ExportQuery, Filters, Format, ListQuery};
use crate::store::{Entry, Scope, Store};

/// The routes of this module (all behind authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/activityhistory",
            get(list).post(super::create::create),
        )
        .route("/api/v1/activityhistory/export", get(export))
        .route("/api/v1/activityhistory/state", get(super::state::state))
        .route("/api/v1/activityhistory/{id}", get(by_id))
}

/// Query parameters of the history list (documentation; parsing is in `params`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct ListParams {
    /// GUID of the entity whose history you want; repeat it (up to 10 targets)
    /// for their histories merged into one.
    targetId: Uuid,
    /// Items per page, 1 to 100; default 10.
    #[param(minimum = 1, maximum = 100)]
    pageSize: Option<u32>,
    /// `nextToken` of the previous page, exactly as returned.
    paginationToken: Option<String>,
    /// Only these activity types (`create`, `update`, `delete`, `migrate`, `end`);
    /// repeat the parameter or separate with commas.
    r#type: Option<String>,
    /// Only activities at or after this date or date-time (ISO 8601).
    from: Option<String>,
    /// Only activities at or before this date or date-time (ISO 8601).
    to: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    #[param(inline)]
    order: Option<OrderParam>,
    /// Only activities that changed this field: a top-level name (`phone`) or a
    /// JSON Pointer (`/address/postcode`); a change of the field, of something
    /// under it, or of something holding it matches.
    field: Option<String>,
    /// Only activities by this author's e-mail address, in any case.
    author: Option<String>,
    /// Only activities published by this domain (`sourceDomain`, any case), e.g. `Transactions`.
    domain: Option<String>,
    /// Only these target types (e.g. `tenurePerson`); repeat or separate with commas.
    targetType: Option<String>,
}

/// Sort direction (documentation).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum OrderParam {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Export format (documentation).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum FormatParam {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// Query parameters of the export (documentation).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
pub(crate) struct ExportParams {
    /// GUID of the entity whose history you want; repeat it (up to 10 targets)
    /// for their histories merged into one.
    targetId: Uuid,
    /// `csv` (default) or `ndjson`.
    #[param(inline)]
    format: Option<FormatParam>,
    /// Only these activity types; repeat or separate with commas.
    r#type: Option<String>,
    /// Only activities at or after this date or date-time.
    from: Option<String>,
    /// Only activities at or before this date or date-time.
    to: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(inline)]
    order: Option<OrderParam>,
    /// The token in the previous response's `Link: <...>; rel="next"`, to continue
    /// an export that stopped at its size limit.
    paginationToken: Option<String>,
    /// Only activities that changed this field: a top-level name (`phone`) or a
    /// JSON Pointer (`/address/postcode`); a change of the field, of something
    /// under it, or of something holding it matches.
    field: Option<String>,
    /// Only activities by this author's e-mail address, in any case.
    author: Option<String>,
    /// Only activities published by this domain (`sourceDomain`, any case), e.g. `Transactions`.
    domain: Option<String>,
    /// Only these target types (e.g. `tenurePerson`); repeat or separate with commas.
    targetType: Option<String>,
}

const LIST_PATH: &str = "/api/v1/activityhistory";
pub(super) const EXPORT_PATH: &str = "/api/v1/activityhistory/export";

/// The absolute URL of the next page or part: this request's URL at `path` with
/// the new token.
pub(super) fn next_url(headers: &HeaderMap, raw: Option<&str>, path: &str, token: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !k.eq_ignore_ascii_case("paginationToken") {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("paginationToken", token);
    absolute_url(headers, &format!("{path}?{}", q.finish()))
}

/// `path_and_query` on the host and scheme this request was sent to (behind a
/// proxy, the ones it forwarded).
pub(super) fn absolute_url(headers: &HeaderMap, path_and_query: &str) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{proto}://{host}{path_and_query}")
}

/// Adds `Link: <url>; rel="next"` for clients that follow links.
fn with_next_link(mut response: Response, url: Option<&str>) -> Response {
    if let Some(link) =
        url.and_then(|u| HeaderValue::from_str(&format!("<{u}>; rel=\"next\"")).ok())
    {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// What a page token is bound to besides the target: the route, the filters and
/// what the caller may see, so a token never resumes a different read.
pub(super) fn binding(route: Route, filters: &Filters, visible: &Visible) -> String {
    let prefix = if route == Route::Export {
        "export;"
    } else {
        ""
    };
    format!("{prefix}{}{}", filters.fingerprint(), visible.binding())
}

/// Checks a caller's page token against the read it is presented with.
pub(super) fn resume(
    state: &AppState,
    target: Uuid,
    bound: &str,
    t: &str,
) -> Result<PageKey, ApiError> {
    token::decode(&state.token_key, target, bound, t).map_err(|e| {
        ApiError::BadRequest(match e {
            TokenError::ForeignQuery => "paginationToken was issued for different filters (type, from, to, order, field, author, domain or targetType), for another route or to a caller with other access; start again without it".into(),
            other => other.to_string(),
        })
    })
}

/// Where a list page or an export part begins: what the caller may read, and
/// where a token (bound to route, filters and that view) says to resume.
struct Start<'a> {
    /// The query's target, filters and the caller's view.
    scope: Scope<'a>,
    /// The key to resume after; `None` on a first page or part.
    from: Option<PageKey>,
    /// What the next token is bound to.
    bound: String,
}

/// The start both reading routes share; notes the request in the access log
/// first, so a refusal is accounted for with what was asked.
fn begin<'a>(
    state: &AppState,
    caller: &'a Caller,
    (route, target, filters, token): (Route, Uuid, &'a Filters, Option<&str>),
    log: &mut AccessLog,
) -> Result<Start<'a>, ApiError> {
    (log.target_id, log.filters) = (Some(target), filters.logged());
    log.continued = token.is_some();
    let visible = caller.visible()?;
    let bound = binding(route, filters, visible);
    let from = token
        .map(|t| resume(state, target, &bound, t))
        .transpose()?;
    let scope = Scope {
        target,
        filters,
        visible,
    };
    Ok(Start { scope, from, bound })
}

/// Whether an empty first answer is a 404: the contract's 404 means "this target
/// has no history" (docs/contracts.md §4), and records the caller may not read
/// are no history to it. A filter that matches nothing on a target that has
/// history is an empty answer instead.
async fn no_history(store: &Store, scope: &Scope<'_>) -> Result<bool, ApiError> {
    let unfiltered = scope.filters.narrows_nothing();
    Ok(unfiltered || !store.has_any(scope.target, scope.visible).await?)
}

fn not_found(target: Uuid) -> ApiError {
    ApiError::NotFound(format!("no activities found for target {target}"))
}

/// Writes the access-log line with the status actually answered.
pub(super) fn answer(result: Result<Response, ApiError>, log: &mut AccessLog) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    log.write(response.status().as_u16());
    response
}

/// Counts the bytes a value encodes to, without keeping them.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encoded_len<T: Serialize>(value: &T) -> usize {
    let mut c = Counter(0);
    // Writing to a counter cannot fail, and these types always serialise.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

/// Room a next token takes in a page: a single target's is about 150
/// characters, a merged history's of ten targets about 1,100.
const TOKEN_ROOM: usize = 1536;

/// Bytes of a page other than its results: the envelope with the longest
/// `paginationDetails` this request can get.
pub(super) fn envelope_len(headers: &HeaderMap, raw: Option<&str>) -> usize {
    let token = "x".repeat(TOKEN_ROOM);
    let url = next_url(headers, raw, LIST_PATH, &token);
    encoded_len(&PageJson {
        results: Vec::new(),
        pagination_details: PaginationDetails {
            next_token: Some(token),
            next_url: Some(url),
        },
    })
}

/// Keeps the activities whose encoded JSON fits in `budget` bytes, and always the
/// first, so every page moves on. Returns them and, when some were left out, the
/// key to resume after the last one kept.
pub(super) fn fit(entries: Vec<Entry>, budget: usize) -> (Vec<ActivityJson>, Option<PageKey>) {
    let mut results = Vec::with_capacity(entries.len());
    let (mut used, mut last) = (0, None);
    for e in entries {
        let json = ActivityJson::from_activity(e.activity);
        let size = encoded_len(&json) + 1; // and the comma before the next
        if !results.is_empty() && used + size > budget {
            return (results, last);
        }
        used += size;
        last = Some(e.key);
        results.push(json);
    }
    (results, None)
}

/// A target's history, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory",
    params(ListParams),
    responses(
        (status = 200, description = "A page of history; `Link: <next>; rel=\"next\"` when more exist", body = PageJson),
        (status = 400, description = "A parameter or the token is invalid; the message says which", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group, or its groups give access to no records", body = ErrorBody),
        (status = 404, description = "The target (or none of the targets) has activities the caller may read", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut log = AccessLog::new(&caller, Route::List);
    let result = list_page(&state, &caller, &headers, raw.as_deref(), &mut log).await;
    answer(result, &mut log)
}

async fn list_page(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Option<&str>,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(raw)?;
    if !q.more_targets.is_empty() {
        return super::merged::list_page(state, caller, headers, raw, &q, log).await;
    }
    let asked = (Route::List, q.target_id, &q.filters, q.token.as_deref());
    let Start {
        scope,
        from: start,
        bound,
    } = begin(state, caller, asked, log)?;
    let first_page = start.is_none();
    let page = state
        .store
        .page(&scope, start, q.page_size as usize)
        .await?;
    if page.entries.is_empty()
        && first_page
        && page.next.is_none()
        && no_history(&state.store, &scope).await?
    {
        return Err(not_found(q.target_id));
    }
    // A page of large records could pass Lambda's response limit: stop at the
    // byte budget and hand back a token for the rest.
    let budget = state
        .access
        .limits
        .page_bytes
        .saturating_sub(envelope_len(headers, raw));
    let (results, cut) = fit(page.entries, budget);
    log.records = results.len();
    let next_token = cut
        .or(page.next)
        .map(|k| token::encode(&state.token_key, q.target_id, &bound, &k));
    Ok(page_response(results, next_token, headers, raw))
}

/// A page of history with its next token, as JSON and as a `Link`.
pub(super) fn page_response(
    results: Vec<ActivityJson>,
    next_token: Option<String>,
    headers: &HeaderMap,
    raw: Option<&str>,
) -> Response {
    let next_url = next_token
        .as_deref()
        .map(|t| next_url(headers, raw, LIST_PATH, t));
    let body = PageJson {
        results,
        pagination_details: PaginationDetails {
            next_token,
            next_url: next_url.clone(),
        },
    };
    with_next_link(Json(body).into_response(), next_url.as_deref())
}

/// One activity by its id.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory/{id}",
    params(("id" = Uuid, Path, description = "Activity id")),
    responses(
        (status = 200, description = "The activity", body = ActivityJson),
        (status = 400, description = "The id is not a GUID", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group, or its groups give access to no records", body = ErrorBody),
        (status = 404, description = "No activity the caller may read has this id", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn by_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let mut log = AccessLog::new(&caller, Route::Lookup);
    let result = lookup(&state, &caller, &id, &mut log).await;
    answer(result.map(IntoResponse::into_response), &mut log)
}

async fn lookup(
    state: &AppState,
    caller: &Caller,
    id: &str,
    log: &mut AccessLog,
) -> Result<Json<ActivityJson>, ApiError> {
    let id = domain::event::parse_guid(id).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`{}` is not an activity id (a GUID)",
            id.chars().take(64).collect::<String>()
        ))
    })?;
    log.activity_id = Some(id);
    let visible = caller.visible()?;
    // A record the caller may not read answers exactly as one that does not exist.
    match state.store.by_id(id, visible).await? {
        Some(a) => {
            (log.target_id, log.records) = (Some(a.target_id), 1);
            Ok(Json(ActivityJson::from_activity(a)))
        }
        None => Err(ApiError::NotFound(format!("no activity has id {id}"))),
    }
}

/// Items read per query while exporting.
const EXPORT_PAGE: usize = 500;
/// Queries one export response may issue: enough to fill the row limit with
/// ordinary records, and a bound on the work of one response when filters skip
/// most of a long history.
const EXPORT_MAX_REQUESTS: usize = 50;

fn encode_rows(format: Format, rows: &[ExportRow]) -> Result<Vec<u8>, ApiError> {
    let failed = |e: String| ApiError::Unexpected(anyhow::anyhow!("encoding export rows: {e}"));
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                w.write_record(r.csv_record())
                    .map_err(|e| failed(e.to_string()))?;
            }
            w.into_inner().map_err(|e| failed(e.to_string()))
        }
        Format::Ndjson => {
            let mut out = Vec::new();
            for r in rows {
                serde_json::to_writer(&mut out, r).map_err(|e| failed(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

/// One export response, built up to its limits.
pub(super) struct Part {
    body: Vec<u8>,
    pub(super) records: usize,
    pub(super) rows: usize,
    /// Where the last activity taken ends.
    last: Option<PageKey>,
}

impl Part {
    /// An empty part: for CSV, its header row, so every part is a whole file.
    pub(super) fn new(format: Format) -> Result<Self, ApiError> {
        let mut body = Vec::new();
        if format == Format::Csv {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(ExportRow::CSV_HEADER)
                .map_err(|e| ApiError::Unexpected(e.into()))?;
            body = w
                .into_inner()
                .map_err(|e| ApiError::Unexpected(anyhow::anyhow!(e.to_string())))?;
        }
        Ok(Self {
            body,
            records: 0,
            rows: 0,
            last: None,
        })
    }

    /// Takes an activity's rows unless they would pass a limit; an activity is
    /// never split, and the first is always taken so every part moves on.
    pub(super) fn take(
        &mut self,
        format: Format,
        e: Entry,
        limits: &Limits,
    ) -> Result<bool, ApiError> {
        let rows = ExportRow::rows(&e.activity);
        let encoded = encode_rows(format, &rows)?;
        let over = self.rows + rows.len() > limits.export_rows
            || self.body.len() + encoded.len() > limits.export_bytes;
        if over && self.records > 0 {
            return Ok(false);
        }
        self.body.extend_from_slice(&encoded);
        (self.records, self.rows) = (self.records + 1, self.rows + rows.len());
        self.last = Some(e.key);
        Ok(true)
    }
}

/// Reads from `start` until the export's limits, the end of the history or the
/// request budget; returns the part and where the next one starts.
async fn read_part(
    state: &AppState,
    scope: &Scope<'_>,
    format: Format,
    mut start: Option<PageKey>,
) -> Result<(Part, Option<PageKey>), ApiError> {
    let mut part = Part::new(format)?;
    let mut requests = 0;
    loop {
        let left = EXPORT_MAX_REQUESTS - requests;
        let page = state.store.read(scope, start, EXPORT_PAGE, left).await?;
        requests += page.requests;
        for e in page.entries {
            if !part.take(format, e, &state.access.limits)? {
                let next = part.last.clone();
                return Ok((part, next));
            }
        }
        match page.next {
            Some(k) if requests < EXPORT_MAX_REQUESTS => start = Some(k),
            next => return Ok((part, next)),
        }
    }
}

/// A target's history as one row per changed field (for Qlik and spreadsheets),
/// in parts of bounded size, each continued by its `Link: rel="next"`.
#[utoipa::path(
    get,
    path = "/api/v1/activityhistory/export",
    params(ExportParams),
    responses(
        (status = 200, description = "CSV with a header row, or NDJSON; one row per changed field; `Link: <next>; rel=\"next\"` when the export continues", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter or the token is invalid", body = ErrorBody),
        (status = 401, description = "No, or an invalid, bearer token", body = ErrorBody),
        (status = 403, description = "The caller is not in an allowed group, or its groups give access to no records", body = ErrorBody),
        (status = 404, description = "The target (or none of the targets) has activities the caller may read", body = ErrorBody),
        (status = 503, description = "The activity store is unavailable", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "history"
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut log = AccessLog::new(&caller, Route::Export);
    let result = export_part(&state, &caller, &headers, raw.as_deref(), &mut log).await;
    answer(result, &mut log)
}

async fn export_part(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Option<&str>,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let q = ExportQuery::parse(raw)?;
    if !q.more_targets.is_empty() {
        return super::merged::export_part(state, caller, headers, raw, &q, log).await;
    }
    let asked = (Route::Export, q.target_id, &q.filters, q.token.as_deref());
    let Start {
        scope,
        from: start,
        bound,
    } = begin(state, caller, asked, log)?;
    let first_part = start.is_none();
    // The whole part is read before answering (it is bounded), so a missing
    // target is a real 404 and a store failure a real 503, not a broken file.
    let (part, next) = read_part(state, &scope, q.format, start).await?;
    if part.records == 0 && first_part && next.is_none() && no_history(&state.store, &scope).await?
    {
        return Err(not_found(q.target_id));
    }
    (log.records, log.rows) = (part.records, part.rows);
    let next_url = next.map(|k| {
        let t = token::encode(&state.token_key, q.target_id, &bound, &k);
        next_url(headers, raw, EXPORT_PATH, &t)
    });
    Ok(export_response(q.format, q.target_id, part, next_url))
}

/// An export part as a file download, with its `Link` to the next part.
pub(super) fn export_response(
    format: Format,
    target: Uuid,
    part: Part,
    next_url: Option<String>,
) -> Response {
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let disposition = format!("attachment; filename=\"activity-history-{target}.{ext}\"");
    let response = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from(part.body),
    )
        .into_response();
    with_next_link(response, next_url.as_deref())
}
