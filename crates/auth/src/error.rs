//! The auth service's one error type, and how each variant answers over HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use banter_http::ApiError;
use banter_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `validation_failed`: the input broke a rule; the field is named.
    #[error(transparent)]
    Validation(#[from] banter_core::ValidationError),
    /// 409 `username_taken`.
    #[error("username taken")]
    UsernameTaken,
    /// 401 `invalid_credentials`: unknown user or wrong password, deliberately the same.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401 `unauthorized`: no usable Bearer token.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 401 `token_expired`: the Bearer token was valid but has expired.
    #[error("token expired")]
    TokenExpired,
    /// 401 `invalid_refresh_token`: unknown, expired, revoked or replayed refresh token.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// 403 `account_disabled`: an admin deactivated the account (login, refresh, any token).
    #[error("account disabled")]
    AccountDisabled,
    /// 403 `registration_closed`: registration is closed, or needs a usable invite.
    #[error("registration closed: {0}")]
    RegistrationClosed(&'static str),
    /// 429 `rate_limited` with `Retry-After`; the text names what there was too much of.
    #[error("rate limited: {1}")]
    RateLimited(banter_http::limit::RetryAfter, &'static str),
    /// 503 `unavailable`: the database cannot be reached right now.
    #[error("store unavailable")]
    Unavailable(#[source] StoreError),
    /// 500 `internal`: logged with its cause, shown to nobody.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Conflict(_) | StoreError::Other(_) => Self::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let unauthorized = |code, message: &str| {
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
            r
        };
        match self {
            Self::Validation(e) => ApiError::from(e).into_response(),
            Self::UsernameTaken => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "that username is already taken",
            )
            .into_response(),
            Self::InvalidCredentials => {
                unauthorized("invalid_credentials", "invalid username or password")
            }
            Self::Unauthorized(why) => unauthorized("unauthorized", why),
            Self::TokenExpired => unauthorized("token_expired", "the access token has expired"),
            Self::InvalidRefreshToken => unauthorized(
                "invalid_refresh_token",
                "the refresh token is not valid; log in again",
            ),
            Self::AccountDisabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "account_disabled",
                "this account has been deactivated; ask an admin to reactivate it",
            )
            .into_response(),
            Self::RegistrationClosed(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "registration_closed", why).into_response()
            }
            Self::RateLimited(wait, what) => wait.into_api_error(what).into_response(),
            Self::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable().into_response()
            }
            Self::Internal(cause) => banter_http::ops::internal_error(&cause),
        }
    }
}
