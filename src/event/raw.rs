//! A provider's payload as the JSON text it came as: read out of the provider's answer once,
//! carried into the event's `data.raw` (and the DLQ) without being built into a tree, cloned
//! or serialized again. Numbers keep the provider's digits (an amount is never rounded
//! through a float); insignificant whitespace is removed, so every event is compact JSON.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// One JSON value (a provider's notification, message or payment), kept as text.
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Keeps `raw` as it is when it is compact, else without the whitespace between its
    /// tokens (every token, numbers included, stays as the provider wrote it).
    pub fn new(raw: Box<RawValue>) -> Self {
        match compacted(raw.get()).map(RawValue::from_string) {
            Some(Ok(compact)) => RawJson(compact),
            _ => RawJson(raw),
        }
    }

    /// The text of `value` (for payloads paybridge assembles itself).
    pub fn from_value(value: &Value) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => RawJson(raw),
            // A Value always serializes; null is never reached.
            Err(_) => RawJson(null()),
        }
    }

    /// Parses `text` as one JSON value.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Box<RawValue>>(text).map(RawJson::new)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Whether it is a JSON object.
    pub fn is_object(&self) -> bool {
        self.get().starts_with('{')
    }

    /// The value as a tree (for the rare reader that needs one).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).unwrap_or(Value::Null)
    }
}

fn null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// `text` without whitespace outside its strings; None when it has none (the usual case:
/// no copy). `text` is valid JSON, so dropping that whitespace leaves valid JSON.
fn compacted(text: &str) -> Option<String> {
    let (mut in_string, mut escaped) = (false, false);
    let mut out: Option<String> = None;
    for (at, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii_whitespace() {
            out.get_or_insert_with(|| text[..at].to_owned());
            continue;
        }
        if let Some(out) = out.as_mut() {
            out.push(c);
        }
    }
    out
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        RawJson::from_value(&value)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RawJson::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_text_is_kept_with_its_digits() {
        let raw = RawJson::parse(r#"{"amount":10.50,"big":123456789012345678901,"s":"a b\" c"}"#);
        let raw = raw.map_err(|e| e.to_string());
        assert_eq!(raw.as_ref().map(RawJson::get), Ok(r#"{"amount":10.50,"big":123456789012345678901,"s":"a b\" c"}"#));
    }

    #[test]
    fn whitespace_outside_strings_is_removed() {
        let raw = RawJson::parse("{\n  \"a\" : [1, 2],\n  \"s\": \"x \\\" y\"\n}").map_err(|e| e.to_string());
        assert_eq!(raw.as_ref().map(RawJson::get), Ok(r#"{"a":[1,2],"s":"x \" y"}"#));
        let pretty =
            RawJson::parse("{ \"amount\": 10.50,\n \"big\": 123456789012345678901 }").map_err(|e| e.to_string());
        assert_eq!(
            pretty.as_ref().map(RawJson::get),
            Ok(r#"{"amount":10.50,"big":123456789012345678901}"#),
            "digits kept"
        );
    }

    #[test]
    fn serializes_verbatim_inside_a_document_and_reads_back() {
        let raw = RawJson::from_value(&json!({"b": 1, "a": [true, null]}));
        let doc = serde_json::to_string(&json!({"raw": raw.to_value()})).unwrap_or_default();
        assert_eq!(doc, r#"{"raw":{"b":1,"a":[true,null]}}"#, "key order kept");
        #[derive(Serialize, Deserialize)]
        struct Doc {
            raw: RawJson,
        }
        let text = serde_json::to_string(&Doc { raw: raw.clone() }).unwrap_or_default();
        assert_eq!(text, r#"{"raw":{"b":1,"a":[true,null]}}"#);
        let back: Result<Doc, _> = serde_json::from_str(&text);
        assert_eq!(back.map(|d| d.raw).ok(), Some(raw.clone()));
        let via_value: Result<Doc, _> = serde_json::from_value(json!({"raw": {"b": 1, "a": [true, null]}}));
        assert_eq!(via_value.map(|d| d.raw).ok(), Some(raw));
    }

    #[test]
    fn objects_are_told_apart() {
        assert!(RawJson::from_value(&json!({})).is_object());
        assert!(!RawJson::from_value(&json!([])).is_object());
        assert_eq!(RawJson::from_value(&json!([1])).to_value(), json!([1]));
    }
}
