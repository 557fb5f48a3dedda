//! Strict JSON request bodies whose every rejection is a clear `validation_failed` envelope.

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// The largest JSON body the API reads. Requests are a few small fields; anything bigger is a
/// mistake or an attack, answered 413 `too_large` without reading further.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Like `axum::Json`, but a wrong content type, a body that is not JSON, a missing field or a
/// field of the wrong type are all answered 400 `validation_failed` with `data.field` naming
/// what is wrong (`content-type`, `body`, or the field's path).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_json(content_type) {
            return Err(ApiError::validation(
                "content-type",
                "the request body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the request body must be at most {MAX_JSON_BODY} bytes"),
                )
            })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Every request body of the API is an object; serde would also accept an array for a
/// struct, which only makes for confusing errors.
fn is_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Parses a JSON document into `T`, naming the offending field on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if !is_object(bytes) {
        return Err(ApiError::validation(
            "body",
            "the body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let path = e.path().to_string();
        let field = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                return ApiError::validation(
                    "body",
                    format!("the body is not valid JSON: {inner}"),
                );
            }
            _ => missing_field(&inner.to_string()).unwrap_or_else(|| {
                if path == "." {
                    "body".to_owned()
                } else {
                    path
                }
            }),
        };
        ApiError::validation(&field, format!("{field}: {inner}"))
    })
}

/// serde reports a missing field at its parent's path, naming it only in the message:
/// "missing field `username` at line 1 column 2".
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
    }

    fn field_of(e: &ApiError) -> String {
        e.data.as_ref().expect("data")["field"]
            .as_str()
            .expect("field")
            .to_owned()
    }

    #[test]
    fn names_the_field_at_fault() {
        let e = parse::<Login>(br#"{"username":"a"}"#).expect_err("missing");
        assert_eq!(field_of(&e), "password");
        assert_eq!(e.code, "validation_failed");
        let e = parse::<Login>(br#"{"username":5,"password":"x"}"#).expect_err("type");
        assert_eq!(field_of(&e), "username");
        let e = parse::<Login>(br#"{"username":"#).expect_err("syntax");
        assert_eq!(field_of(&e), "body");
        let e = parse::<Login>(br#"[1,2]"#).expect_err("shape");
        assert_eq!(field_of(&e), "body");
        assert!(parse::<Login>(br#"{"username":"a","password":"b","x":1}"#).is_ok());
    }

    #[test]
    fn accepts_json_content_types_only() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
