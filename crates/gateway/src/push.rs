//! `/api/v1/push/…`: the server's VAPID public key, and the browsers a user wants pushes on.
//!
//! A subscription is a device's setting, not a change of a room: it is written to the store
//! directly. It is checked at the edge ([`Subscription::parse`]): an `https://` endpoint that
//! is not this machine or its network (or one on `BANTER_PUSH_INSECURE_ORIGINS`), and keys of
//! the right lengths.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_auth::AuthUser;
use banter_core::ValidationError;
use banter_http::{ApiError, ApiJson, Envelope};
use banter_push::{
    Connections, InsecureOrigins, Subscription, SubscriptionJson, MAX_SUBSCRIPTIONS_PER_USER,
};
use banter_store::PushSubscription;
use serde::Deserialize;

use crate::api::Error;
use crate::hub::Hub;
use crate::GatewayState;

/// What the API needs of push: the key browsers subscribe with, and which plain-HTTP push
/// services to accept.
#[derive(Debug, Clone)]
pub struct PushApi {
    /// The VAPID public key, base64url.
    pub public_key: String,
    pub insecure: InsecureOrigins,
}

fn disabled() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "push notifications are not enabled on this server",
    )
    .into_response()
}

/// `GET /api/v1/push/key` → `{"public_key"}`.
pub async fn key(State(state): State<GatewayState>, _user: AuthUser) -> Response {
    match &state.config.push {
        Some(push) => Envelope::ok(
            "Push key",
            serde_json::json!({ "public_key": push.public_key }),
        )
        .into_response(),
        None => disabled(),
    }
}

/// `POST /api/v1/push/subscriptions` with a browser's `PushSubscription` JSON → 201.
pub async fn subscribe(
    State(state): State<GatewayState>,
    user: AuthUser,
    ApiJson(input): ApiJson<SubscriptionJson>,
) -> Result<Response, Error> {
    let Some(push) = &state.config.push else {
        return Ok(disabled());
    };
    if user.bot.is_some() {
        return Err(Error::Forbidden("bots get no push notifications"));
    }
    let sub = Subscription::parse(&input, &push.insecure)?;
    state
        .store
        .save_push_subscription(
            &PushSubscription {
                user: user.id,
                endpoint: sub.endpoint.to_string(),
                p256dh: sub.p256dh,
                auth: sub.auth,
                created_at: banter_store::now(),
            },
            MAX_SUBSCRIPTIONS_PER_USER,
        )
        .await?;
    Ok(Envelope::created(
        "Subscribed to push notifications",
        serde_json::json!({ "endpoint": sub.endpoint.as_str() }),
    )
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct Unsubscribe {
    endpoint: String,
}

/// `DELETE /api/v1/push/subscriptions` `{"endpoint"}` → 200 (also when it was not there: the
/// browser's wish is met either way).
pub async fn unsubscribe(
    State(state): State<GatewayState>,
    user: AuthUser,
    ApiJson(input): ApiJson<Unsubscribe>,
) -> Result<Response, Error> {
    if state.config.push.is_none() {
        return Ok(disabled());
    }
    if input.endpoint.is_empty()
        || input.endpoint.len() > banter_push::subscription::MAX_ENDPOINT_LEN
    {
        return Err(ValidationError::new("endpoint", "must be the subscription's endpoint").into());
    }
    // Stored endpoints are normalized URLs: the browser's text is parsed the same way.
    let endpoint = url_text(&input.endpoint);
    let removed = state
        .store
        .delete_push_subscription(user.id, &endpoint)
        .await?;
    Ok(Envelope::ok(
        "Unsubscribed from push notifications",
        serde_json::json!({ "endpoint": endpoint, "removed": removed }),
    )
    .into_response())
}

fn url_text(text: &str) -> String {
    url::Url::parse(text).map_or_else(|_| text.to_owned(), |u| u.to_string())
}

impl Connections for Hub {
    fn is_connected(&self, user: &str) -> bool {
        self.connected_anywhere(user)
    }
}
