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
    close_objects(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert("$id".into(), Value::String(DATA_SCHEMA.to_owned()));
    }
    value
}

/// Gives every object schema with named properties `additionalProperties: false` (a closed
/// content model). A schema registry then accepts a new optional property as a BACKWARD
/// compatible change and refuses a removed one; with open objects it refuses every added
/// property (old data could carry the name with any type). Maps (`additionalProperties`
/// with a schema) and free-form values (`raw`) stay open.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
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
