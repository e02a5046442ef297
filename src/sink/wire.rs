//! The Confluent wire format of a record value: magic byte 0, the schema id as 4 bytes
//! big-endian, then the serialized value (here the event's JSON).

use serde::Serialize;

/// The magic byte that starts a framed value.
pub const MAGIC_BYTE: u8 = 0;

/// How event values are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValueFormat {
    /// The JSON of the CloudEvent, nothing else (the default).
    #[default]
    Json,
    /// Confluent framing around the JSON, with the registry's id of the event schema.
    Confluent { schema_id: u32 },
}

impl ValueFormat {
    /// `value` serialized in this format.
    pub fn encode<T: Serialize>(self, value: &T) -> serde_json::Result<Vec<u8>> {
        match self {
            ValueFormat::Json => serde_json::to_vec(value),
            ValueFormat::Confluent { schema_id } => {
                let mut bytes = Vec::with_capacity(512);
                bytes.push(MAGIC_BYTE);
                bytes.extend_from_slice(&schema_id.to_be_bytes());
                serde_json::to_writer(&mut bytes, value)?;
                Ok(bytes)
            }
        }
    }
}

/// Splits a record value into its schema id (when it is framed) and the JSON. A JSON
/// value never starts with byte 0, so unframed values pass through unchanged.
pub fn split(value: &[u8]) -> (Option<u32>, &[u8]) {
    match value {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => (Some(u32::from_be_bytes([*a, *b, *c, *d])), rest),
        _ => (None, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_value_is_magic_byte_id_then_json() {
        let value = serde_json::json!({"a": 1});
        let bytes = ValueFormat::Confluent { schema_id: 0x0102_0304 }.encode(&value).unwrap_or_default();
        assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(&bytes[5..], br#"{"a":1}"#);
        assert_eq!(split(&bytes), (Some(0x0102_0304), &br#"{"a":1}"#[..]));
    }

    #[test]
    fn plain_json_passes_through() {
        let bytes = ValueFormat::Json.encode(&serde_json::json!([1])).unwrap_or_default();
        assert_eq!(bytes, b"[1]");
        assert_eq!(split(&bytes), (None, &b"[1]"[..]));
        assert_eq!(split(&[0, 1]), (None, &[0u8, 1][..]), "too short to be framed");
    }
}
