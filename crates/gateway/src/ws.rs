//! `GET /ws`: checks the token and the room *before* upgrading, so a bad or expired token is
//! an HTTP 401 the client can read, not a socket that opens and dies.

use std::collections::HashMap;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use banter_core::{Cursor, RoomName};
use banter_http::limit::PeerAddr;
use banter_http::ApiError;

use crate::conn::{self, Peer};
use crate::GatewayState;

pub async fn upgrade(
    State(state): State<GatewayState>,
    PeerAddr(peer_addr): PeerAddr,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // First, before any token work: a flood from one address is turned away cheaply.
    let ip = banter_http::limit::client_ip(peer_addr, &headers, state.limits.trust_forwarded);
    if let Err(wait) = state.limits.connects_per_ip.check(&ip) {
        return wait
            .into_api_error("new connections from this address")
            .into_response();
    }
    if !state.config.ws_origins.admits(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "pages of this origin may not open banter connections (see BANTER_WS_ORIGINS)",
        )
        .into_response();
    }
    // The seed puts the token in the query (browsers cannot set headers on a WebSocket);
    // other clients may send it as a Bearer header instead.
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let Some(token) = query.get("token").map(String::as_str).or(bearer) else {
        return banter_auth::Error::Unauthorized("a token is required: /ws?token=<JWT>")
            .into_response();
    };
    let who = match state.tokens.authenticate(token).await {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    let (user_id, username) = (who.id, who.username.clone());
    let room = match RoomName::parse(query.get("room").map_or("general", String::as_str)) {
        Ok(room) => room,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // The URL's room may resume too, as a `join` with `since` would: a client that
    // reconnects hears nothing of it live before its missed events are replayed.
    let since = match query
        .get("since")
        .map(|s| Cursor::parse("since", s))
        .transpose()
    {
        Ok(since) => since,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let actor = crate::chat::Actor::of(user_id, username.clone(), who.bot.clone());
    if let Err(e) = state.chat.reader(&actor, room.clone()).await {
        return crate::api::Error::from(e).into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "this endpoint speaks WebSocket: send an Upgrade request",
            )
            .into_response()
        }
    };
    if state.shutdown.is_cancelled() {
        return ApiError::unavailable().into_response();
    }
    let Some(slot) = state.limits.open_connection(user_id) else {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many open connections for this user; close one first",
        );
        e.retry_after = Some(5);
        return e.into_response();
    };
    let peer = Peer {
        id: user_id,
        username,
        expires_at: who.expires_at.unwrap_or(i64::MAX),
        bot: who.bot,
    };
    let tasks = state.tasks.clone();
    ws.max_message_size(crate::MAX_WS_MESSAGE)
        .max_frame_size(crate::MAX_WS_MESSAGE)
        // The socket layer's defaults (128 KiB each, the read buffer zero-filled up front)
        // would cost an idle connection 130 KiB; clients send small frames, and writes are
        // batched per wake-up by the connection task (see `conn::Conn::forward`).
        .read_buffer_size(crate::WS_READ_BUFFER)
        .write_buffer_size(crate::WS_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            tasks.track_future(async move {
                conn::run(socket, state, peer, room, since).await;
                // Held for the connection's life: its end gives the user's slot back.
                drop(slot);
            })
        })
}
