//! The HTTP ground every banter service stands on.
//!
//! - [`envelope`]: the seed's `{"success","status_code","message","data"}` answer, and
//!   [`ApiError`], the failure shape each service's own error type converts into;
//! - [`json`]: a JSON body extractor whose every rejection is a `validation_failed` envelope
//!   naming the field, never a framework's plain-text 415 or 422;
//! - [`limit`]: rate limits per address, username or user, and the client's address;
//! - [`ops`]: `/health`, `/ready`, `/metrics`, the 404/405 envelopes, and the middleware stack
//!   (request metrics, tracing without query strings, panics turned into a 500 envelope).

pub mod envelope;
pub mod json;
pub mod limit;
pub mod ops;

pub use envelope::{ApiError, Envelope};
pub use json::ApiJson;
