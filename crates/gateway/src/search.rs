//! `GET /api/v1/search`: the messages a user may read that match what they typed, newest
//! first, each with a highlight of why it matched.
//!
//! Where it looks is decided before the query runs and is part of it ([`SearchScope`]): one
//! room the user may read (`room=`, checked by the chat service's rules like history), or
//! every room they are a member of, corrected by what this gateway heard lately that the
//! store may not have yet (on Kafka, persist lags the log): rooms joined lately are added,
//! rooms left or removed from lately are taken out. Results are never filtered afterwards,
//! which would leak counts and break paging.
//!
//! Without `room=`, a public room the user is not in is not searched (Mattermost and Zulip do
//! the same by default); naming it with `room=` searches it, as its history is open to them.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_core::search::{highlight, plain, SearchQuery};
use banter_core::{Cursor, StoredMessage, Username, ValidationError};
use banter_http::Envelope;
use banter_store::{Search, SearchScope};
use serde::Serialize;

use crate::api::{actor, reader, Error};
use crate::GatewayState;

/// Results on a page when `limit` is not given, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 50;

#[derive(Debug, Serialize)]
pub struct Results {
    results: Vec<Found>,
    has_more: bool,
}

/// A message found, with its fields at the top level beside `highlight`.
#[derive(Debug, Serialize)]
struct Found {
    #[serde(flatten)]
    message: StoredMessage,
    /// HTML: the text (or the name of the file that matched) escaped, matches in `<mark>`.
    highlight: String,
}

/// `GET /api/v1/search?q=&room=&from=&before=&limit=`. The next page is asked for with
/// `before=` the last result's cursor.
pub async fn search(
    State(state): State<GatewayState>,
    user: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Error> {
    if let Err(wait) = state.limits.searches.check(&user.id) {
        return Ok(wait.into_api_error("searches").into_response());
    }
    let query = SearchQuery::parse(params.get("q").map_or("", String::as_str))?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ValidationError::new("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let before = params
        .get("before")
        .map(|c| Cursor::parse("before", c))
        .transpose()?;
    let from = params
        .get("from")
        .map(|name| {
            Username::parse(name.trim_start_matches('@'))
                .map_err(|e| ValidationError::new("from", e.message))
        })
        .transpose()?;
    let scope = match params.get("room") {
        Some(room) => SearchScope::Room(reader(&state, &user, room).await?.room().clone()),
        None => state.chat.search_scope(&actor(&user)).await?,
    };
    let search = Search {
        query,
        scope,
        from,
        before,
        limit: limit + 1,
    };
    let mut found = state.store.search(&search).await?;
    let has_more = found.len() > limit as usize;
    found.truncate(limit as usize);
    let results = found
        .into_iter()
        .map(|message| Found {
            highlight: highlight_of(&message, &search.query),
            message,
        })
        .collect();
    Ok(Envelope::ok("Results", Results { results, has_more }).into_response())
}

/// The text's highlight, or a matching file name's, or (where the engine's words and the
/// highlighter's differ) the text unmarked.
fn highlight_of(message: &StoredMessage, query: &SearchQuery) -> String {
    highlight(&message.body, query)
        .or_else(|| {
            message
                .attachments
                .iter()
                .find_map(|a| highlight(&a.name, query))
        })
        .unwrap_or_else(|| plain(&message.body))
}
