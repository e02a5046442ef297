//! The JSON Schema of the configuration file, generated from the Rust types.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::Config;

/// The configuration schema (JSON Schema 2020-12).
///
/// Tagged unions (`[[sources]]` by `kind`) are published as `if`/`then` branches rather
/// than `oneOf`, so a validator reports the exact key that is wrong inside a source
/// instead of "matches none of the alternatives".
pub fn config_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().for_deserialize().into_generator();
    let schema = generator.into_root_schema_for::<Config>();
    let mut value = schema.to_value();
    rewrite_tagged_unions(&mut value);
    value
}

/// Replaces every `oneOf` whose branches are all discriminated by a constant `kind`
/// with `properties.kind.enum` + `allOf[{if kind == X, then branch}]`.
fn rewrite_tagged_unions(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(replacement) = object.get("oneOf").and_then(tagged_union_as_if_then) {
                object.remove("oneOf");
                for (key, v) in replacement {
                    object.insert(key, v);
                }
            }
            for child in object.values_mut() {
                rewrite_tagged_unions(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_tagged_unions),
        _ => {}
    }
}

fn tagged_union_as_if_then(one_of: &Value) -> Option<Map<String, Value>> {
    let branches = one_of.as_array()?;
    let mut tags = Vec::new();
    let mut rules = Vec::new();
    for branch in branches {
        let tag = branch.pointer("/properties/kind/const")?.clone();
        rules.push(json!({
            "if": { "properties": { "kind": { "const": tag } }, "required": ["kind"] },
            "then": branch,
        }));
        tags.push(tag);
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("required".into(), json!(["kind"]));
    out.insert("properties".into(), json!({ "kind": { "description": "The provider of this source.", "enum": tags } }));
    out.insert("allOf".into(), Value::Array(rules));
    Some(out)
}
