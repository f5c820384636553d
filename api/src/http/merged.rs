//! The list and the export over several targets (`targetId` repeated): one
//! history in one order, paged with one token bound to the whole set, its
//! filters and what the caller may see (the keyset merge is in
//! [`crate::merged`]).

use axum::http::HeaderMap;
use axum::response::Response;
use domain::token::{self, PageKey};
use uuid::Uuid;

use super::activities::{
    EXPORT_PATH, Part, binding, envelope_len, export_response, fit, next_url, page_response, resume,
};
use crate::AppState;
use crate::access::{AccessLog, Caller, Route, Visible};
use crate::error::ApiError;
use crate::merged::{Cursors, set_id};
use crate::params::{ExportQuery, Filters, ListQuery};
use crate::store::Scope;

/// Records read per target for each batch of a merged export.
const EXPORT_BATCH: usize = 100;
/// Batches one merged export part may read: with ten targets at most
/// 5 x 10 x 4 = 200 queries.
const EXPORT_BATCHES: usize = 5;

/// The targets in one canonical order (sorted), so a token's cursors, which are
/// by position, mean the same targets however the query lists them.
fn in_order(first: Uuid, more: &[Uuid]) -> Vec<Uuid> {
    let mut targets: Vec<Uuid> = std::iter::once(first).chain(more.iter().copied()).collect();
    targets.sort_unstable();
    targets
}

/// What a merged read starts from: its scopes, cursors and token binding.
struct Start<'a> {
    set: Uuid,
    scopes: Vec<Scope<'a>>,
    cursors: Cursors,
    bound: String,
}

/// The start both merged routes share; notes the request in the access log first.
fn begin<'a>(
    state: &AppState,
    caller: &'a Caller,
    (route, targets, filters, token): (Route, &'a [Uuid], &'a Filters, Option<&str>),
    log: &mut AccessLog,
) -> Result<Start<'a>, ApiError> {
    (log.targets, log.filters) = (targets.to_vec(), filters.logged());
    log.continued = token.is_some();
    let visible: &Visible = caller.visible()?;
    let bound = format!("merged;{}", binding(route, filters, visible));
    let set = set_id(targets);
    let cursors = match token {
        None => Cursors::start(targets.len()),
        Some(t) => {
            let key = resume(state, set, &bound, t)?;
            Cursors::decode(&key.id, targets.len()).ok_or_else(|| {
                ApiError::BadRequest(
                    "paginationToken is not a merged history's token; start again without it"
                        .into(),
                )
            })?
        }
    };
    let scopes = targets
        .iter()
        .map(|&target| Scope {
            target,
            filters,
            visible,
        })
        .collect();
    Ok(Start {
        set,
        scopes,
        cursors,
        bound,
    })
}

/// The token that resumes at `cursors`, unless every target is done.
fn next_token(state: &AppState, start: &Start<'_>, cursors: &Cursors) -> Option<String> {
    let key = PageKey {
        id: cursors.encode(),
        created_at: None,
    };
    (!cursors.done()).then(|| token::encode(&state.token_key, start.set, &start.bound, &key))
}

/// 404 only when none of the targets has any record the caller may read (a
/// filter that matches nothing on targets with history is an empty answer).
async fn none_has_history(state: &AppState, start: &Start<'_>) -> Result<bool, ApiError> {
    for scope in &start.scopes {
        if state.store.has_any(scope.target, scope.visible).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn not_found(targets: &[Uuid]) -> ApiError {
    let list: Vec<String> = targets.iter().map(Uuid::to_string).collect();
    ApiError::NotFound(format!(
        "no activities found for targets {}",
        list.join(", ")
    ))
}

/// A page of the merged history.
pub(super) async fn list_page(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Option<&str>,
    q: &ListQuery,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let targets = in_order(q.target_id, &q.more_targets);
    let asked = (Route::List, &targets[..], &q.filters, q.token.as_deref());
    let start = begin(state, caller, asked, log)?;
    let size = q.page_size as usize;
    let mut merged = (state.store)
        .merged(&start.scopes, &start.cursors, size, q.filters.order)
        .await?;
    let entries: Vec<_> = std::mem::take(&mut merged.entries)
        .into_iter()
        .take(size)
        .collect();
    if entries.is_empty() && q.token.is_none() && none_has_history(state, &start).await? {
        return Err(not_found(&targets));
    }
    let budget = (state.access.limits.page_bytes).saturating_sub(envelope_len(headers, raw));
    let (results, _) = fit(entries, budget);
    log.records = results.len();
    let next = next_token(state, &start, &merged.cursors_after(results.len()));
    Ok(page_response(results, next, headers, raw))
}

/// A part of the merged export.
pub(super) async fn export_part(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    raw: Option<&str>,
    q: &ExportQuery,
    log: &mut AccessLog,
) -> Result<Response, ApiError> {
    let targets = in_order(q.target_id, &q.more_targets);
    let asked = (Route::Export, &targets[..], &q.filters, q.token.as_deref());
    let start = begin(state, caller, asked, log)?;
    let (part, cursors) = read_part(state, &start, q).await?;
    if part.records == 0 && q.token.is_none() && none_has_history(state, &start).await? {
        return Err(not_found(&targets));
    }
    (log.records, log.rows) = (part.records, part.rows);
    let next_url =
        next_token(state, &start, &cursors).map(|t| next_url(headers, raw, EXPORT_PATH, &t));
    Ok(export_response(q.format, start.set, part, next_url))
}

/// Reads merged batches until the part's limits, the end of every target or the
/// batch budget; returns the part and the cursors after it.
async fn read_part(
    state: &AppState,
    start: &Start<'_>,
    q: &ExportQuery,
) -> Result<(Part, Cursors), ApiError> {
    let mut part = Part::new(q.format)?;
    let mut cursors = start.cursors.clone();
    for _ in 0..EXPORT_BATCHES {
        let mut merged = (state.store)
            .merged(&start.scopes, &cursors, EXPORT_BATCH, q.filters.order)
            .await?;
        let entries = std::mem::take(&mut merged.entries);
        let mut taken = 0;
        for e in entries.into_iter().take(EXPORT_BATCH) {
            if !part.take(q.format, e, &state.access.limits)? {
                return Ok((part, merged.cursors_after(taken)));
            }
            taken += 1;
        }
        cursors = merged.cursors_after(taken);
        if cursors.done() {
            break;
        }
    }
    Ok((part, cursors))
}
