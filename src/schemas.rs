//! The published JSON Schemas (committed under `schemas/`, checked for drift by a test).

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::event::{CanonicalEvent, DATA_SCHEMA};

/// The committed file name of the event schema.
pub const EVENT_SCHEMA_FILE: &str = "schemas/payment-event.v1.schema.json";
/// The committed file name of the config schema.
pub const CONFIG_SCHEMA_FILE: &str = "schemas/config.schema.json";

/// The schema of the Kafka record value (the whole CloudEvents envelope).
pub fn event_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().for_serialize().into_generator();
    let mut value = generator.into_root_schema_for::<CanonicalEvent>().to_value();
    if let Value::Object(map) = &mut value {
        map.insert("$id".into(), Value::String(DATA_SCHEMA.to_owned()));
    }
    value
}

/// The schema of the configuration file.
pub fn config_schema() -> Value {
    let mut value = crate::config::config_schema();
    if let Value::Object(map) = &mut value {
        map.insert("$id".into(), Value::String("urn:paybridge:schema:config:v1".to_owned()));
    }
    value
}

/// The exact text written to the committed files: pretty JSON and a final newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
