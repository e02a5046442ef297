//! Pure mappings from provider payloads to [`CanonicalEvent`](crate::event::CanonicalEvent).
//! No I/O here; every function is tested table-driven from fixtures.

pub mod checkout;
pub mod field;
pub mod payments_direct;
pub mod ripplenet;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A payload that cannot become an event (the rest of the payload is never guessed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("payload is not a JSON object")]
    NotAnObject,
    #[error("missing or empty field `{0}`")]
    Missing(&'static str),
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("payload cannot be read: {0}")]
    Unreadable(String),
}

/// A non-empty string at `pointer`, or None when absent or null.
pub(crate) fn opt_str<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// A required non-empty string.
pub(crate) fn req_str<'a>(value: &'a Value, pointer: &str, name: &'static str) -> Result<&'a str, NormalizeError> {
    match value.pointer(pointer) {
        None | Some(Value::Null) => Err(NormalizeError::Missing(name)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(NormalizeError::Missing(name)),
        Some(Value::String(s)) => Ok(s.trim()),
        Some(_) => Err(NormalizeError::WrongType(name)),
    }
}

/// An RFC 3339 time at `pointer`; None when absent or not a valid time.
pub(crate) fn opt_time(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    opt_str(value, pointer).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// An amount written as a JSON string or number, as a decimal string.
pub(crate) fn opt_amount(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
