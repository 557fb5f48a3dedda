//! The seed's response envelope, kept byte-compatible so its clients keep working.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// A successful answer: `{"success":true,"status_code":..,"message":..,"data":..}`.
#[derive(Debug)]
pub struct Envelope<T> {
    pub status: StatusCode,
    pub message: &'static str,
    pub data: T,
}

impl<T: Serialize> Envelope<T> {
    pub fn ok(message: &'static str, data: T) -> Self {
        Self {
            status: StatusCode::OK,
            message,
            data,
        }
    }

    /// 202: taken on; the work goes on after the answer.
    pub fn accepted(message: &'static str, data: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            message,
            data,
        }
    }

    pub fn created(message: &'static str, data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            message,
            data,
        }
    }
}

#[derive(Serialize)]
struct Body<'a, T> {
    success: bool,
    status_code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        let body = Body {
            success: true,
            status_code: self.status.as_u16(),
            message: self.message,
            error: None,
            data: Some(self.data),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// A failure as clients see it: status, machine code, a sentence, and optional details
/// (for `validation_failed`, `data.field` names the field at fault).
///
/// Services keep their own error enums and convert into this at the edge; internal details
/// never get here (see [`ApiError::internal`]).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub data: Option<Value>,
    /// Sent as `Retry-After` (seconds) with `rate_limited` and `unavailable`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            data: None,
            retry_after: None,
        }
    }

    /// 400 `validation_failed` naming the field.
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "validation_failed", message);
        e.data = Some(serde_json::json!({ "field": field }));
        e
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 `unavailable`: a dependency is down; the client may retry.
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable, please retry",
        );
        e.retry_after = Some(1);
        e
    }

    /// 500 `internal`: the sentence says nothing about the cause, which the caller logs.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            success: false,
            status_code: self.status.as_u16(),
            message: &self.message,
            error: Some(self.code),
            data: self.data.as_ref(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<banter_core::ValidationError> for ApiError {
    fn from(e: banter_core::ValidationError) -> Self {
        Self::validation(e.field, format!("{}: {}", e.field, e.message))
    }
}
