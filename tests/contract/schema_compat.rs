//! The compatibility guard: the event schema the code generates must read everything every
//! released version (schemas/released/) accepted — the BACKWARD rule a schema registry
//! applies. Additive changes pass; removing, retyping, narrowing or newly requiring fail.
//!
//! Releasing a new version: see "Evolving the event schema" in docs/src/event-contract.md.

use crate::support;

use std::path::PathBuf;

use paybridge::schemas::event_schema;
use serde_json::{Value, json};
use support::compat::{differences, incompatibilities};

fn released() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/released");
    let mut found: Vec<(u32, String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let revision = name.strip_prefix("payment-event.v1.")?.strip_suffix(".schema.json")?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let schema = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            Some((revision, name, schema))
        })
        .collect();
    found.sort_by_key(|(revision, _, _)| *revision);
    assert!(!found.is_empty(), "no released schema in {}", dir.display());
    found.into_iter().map(|(_, name, schema)| (name, schema)).collect()
}

/// The guard: Err lists every incompatible change against every released version.
fn guard(generated: &Value, released: &[(String, Value)]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, old) in released {
        for difference in incompatibilities(old, generated) {
            problems.push(format!("against {name}: {difference}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the event schema is not backward compatible with the released versions:\n  {}\n\
             Only additive changes are allowed (a new optional property, a new enum value or state, a \
             widened type). A breaking change needs a new major version and topic (v2).",
            problems.join("\n  ")
        ))
    }
}

fn latest_released() -> Value {
    released().pop().map(|(_, schema)| schema).unwrap_or_default()
}

fn kinds(old: &Value, new: &Value) -> Vec<String> {
    incompatibilities(old, new).iter().map(ToString::to_string).collect()
}

#[test]
fn the_generated_schema_reads_every_released_version() {
    if let Err(problems) = guard(&event_schema(), &released()) {
        panic!("{problems}");
    }
}

#[test]
fn the_guard_fails_on_a_removed_field() {
    let mut broken = event_schema();
    let data = &mut broken["$defs"]["PaymentEvent"];
    if let Some(p) = data["properties"].as_object_mut() {
        p.remove("provider_state");
    }
    if let Some(r) = data["required"].as_array_mut() {
        r.retain(|v| v != "provider_state");
    }
    let refused = guard(&broken, &released()).expect_err("a removed property must fail the guard");
    assert!(
        refused.contains("#/properties/data/properties/provider_state")
            && refused.contains("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
        "{refused}"
    );
}

#[test]
fn the_guard_passes_an_added_optional_field() {
    let mut added = event_schema();
    added["$defs"]["PaymentEvent"]["properties"]["settled_at"] =
        json!({"type": ["string", "null"], "format": "date-time", "description": "When the funds settled."});
    assert_eq!(guard(&added, &released()), Ok(()));
    let found = differences(&latest_released(), &added);
    assert!(
        found.iter().any(|d| d.kind == "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"),
        "the addition is seen, as compatible: {found:?}"
    );
}

#[test]
fn a_new_required_field_is_refused() {
    let mut added = event_schema();
    let data = &mut added["$defs"]["PaymentEvent"];
    data["properties"]["settled_at"] = json!({"type": "string"});
    if let Some(r) = data["required"].as_array_mut() {
        r.push(json!("settled_at"));
    }
    assert!(
        kinds(&latest_released(), &added).iter().any(|k| k.contains("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")),
        "{:?}",
        kinds(&latest_released(), &added)
    );
    // Making an existing optional property required is refused as well.
    let mut required = event_schema();
    if let Some(r) = required["$defs"]["Amount"]["required"].as_array_mut() {
        r.push(json!("decimal_count"));
    }
    assert!(kinds(&latest_released(), &required).iter().any(|k| k.contains("REQUIRED_ATTRIBUTE_ADDED")));
}

#[test]
fn a_changed_type_is_refused_and_a_widened_one_passes() {
    let mut changed = event_schema();
    changed["$defs"]["PaymentEvent"]["properties"]["payment_id"]["type"] = json!("integer");
    assert!(
        kinds(&latest_released(), &changed)
            .iter()
            .any(|k| k.contains("properties/payment_id") && k.contains("TYPE_CHANGED"))
    );

    let mut nullable = event_schema();
    nullable["$defs"]["PaymentEvent"]["properties"]["payment_id"]["type"] = json!(["string", "null"]);
    assert_eq!(kinds(&latest_released(), &nullable), Vec::<String>::new(), "string → string|null accepts more");
    // ...and back is a narrowing.
    assert!(!incompatibilities(&nullable, &latest_released()).is_empty());
}

#[test]
fn a_narrowed_enum_is_refused_and_a_new_value_passes() {
    let base = latest_released();
    let mut fewer_states = event_schema();
    if let Some(states) = fewer_states["$defs"]["CanonicalState"]["oneOf"].as_array_mut() {
        states.pop();
    }
    assert!(!kinds(&base, &fewer_states).is_empty(), "a canonical state can never be removed");

    let mut more_states = event_schema();
    if let Some(states) = more_states["$defs"]["CanonicalState"]["oneOf"].as_array_mut() {
        states.push(json!({"type": "string", "const": "on_hold", "description": "Held for review."}));
    }
    assert_eq!(kinds(&base, &more_states), Vec::<String>::new());

    let mut fewer_results = event_schema();
    let results = &mut fewer_results["$defs"]["FraudCheckResult"]["oneOf"][0]["enum"];
    assert!(results.is_array(), "the fraud-check results are a string enum: {results}");
    if let Some(values) = results.as_array_mut() {
        values.retain(|v| v != "review");
    }
    // Inside the nullable `fraud_check` the narrowed branch no longer matches, as the
    // registry reports it: the union's subschemas changed.
    assert!(!kinds(&base, &fewer_results).is_empty(), "a fraud-check result can never be removed");
    let two = json!({"type": "string", "enum": ["approved", "declined"]});
    let one = json!({"type": "string", "enum": ["approved"]});
    assert!(kinds(&two, &one).iter().any(|k| k.contains("ENUM_ARRAY_NARROWED")), "{:?}", kinds(&two, &one));
    assert_eq!(kinds(&one, &two), Vec::<String>::new());
}

#[test]
fn a_tightened_pattern_is_refused() {
    let mut patterned = event_schema();
    patterned["$defs"]["PaymentEvent"]["properties"]["account"]["pattern"] = json!("^[a-z0-9-]+$");
    assert!(kinds(&latest_released(), &patterned).iter().any(|k| k.contains("PATTERN_ADDED")));
    let mut tighter = patterned.clone();
    tighter["$defs"]["PaymentEvent"]["properties"]["account"]["pattern"] = json!("^[a-z]+$");
    assert!(kinds(&patterned, &tighter).iter().any(|k| k.contains("PATTERN_CHANGED")));
    // Dropping the pattern accepts more.
    assert_eq!(kinds(&patterned, &latest_released()), Vec::<String>::new());
}

/// Honest like a real registry: a property added to an open object is refused (old data
/// may carry that name with any type), which is why paybridge's objects are closed.
#[test]
fn a_property_added_to_an_open_object_is_refused_as_confluent_does() {
    let open_v1 = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let open_v2 = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
    assert_eq!(
        kinds(&open_v1, &open_v2),
        vec!["Difference{jsonPath='#/properties/b', type=PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL}"]
    );
    // Removing from an open object is fine; from a closed one it is not.
    assert_eq!(kinds(&open_v2, &open_v1), Vec::<String>::new());
    let closed = |v: &Value| {
        let mut v = v.clone();
        v["additionalProperties"] = json!(false);
        v
    };
    assert_eq!(kinds(&closed(&open_v1), &closed(&open_v2)), Vec::<String>::new());
    assert_eq!(
        kinds(&closed(&open_v2), &closed(&open_v1)),
        vec!["Difference{jsonPath='#/properties/b', type=PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL}"]
    );
    // Opening a closed object is compatible; closing an open one is not.
    assert_eq!(kinds(&closed(&open_v1), &open_v1), Vec::<String>::new());
    assert!(!kinds(&open_v1, &closed(&open_v1)).is_empty());
}

#[test]
fn every_object_of_the_event_schema_is_closed_so_it_can_grow() {
    fn check(value: &Value, path: &str, open: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") && map.get("additionalProperties") != Some(&Value::Bool(false)) {
                    open.push(path.to_owned());
                }
                for (k, v) in map {
                    check(v, &format!("{path}/{k}"), open);
                }
            }
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| check(v, &format!("{path}/{i}"), open)),
            _ => {}
        }
    }
    let mut open = Vec::new();
    check(&event_schema(), "#", &mut open);
    assert!(open.is_empty(), "open objects cannot gain a property under BACKWARD compatibility: {open:?}");
}

#[test]
fn limits_follow_confluent() {
    let v = |extra: Value| {
        let mut s = json!({"type": "string"});
        if let Some(m) = s.as_object_mut() {
            m.extend(extra.as_object().cloned().unwrap_or_default());
        }
        s
    };
    assert!(kinds(&v(json!({})), &v(json!({"maxLength": 10}))).iter().any(|k| k.contains("MAX_LENGTH_ADDED")));
    assert_eq!(kinds(&v(json!({"maxLength": 10})), &v(json!({"maxLength": 20}))), Vec::<String>::new());
    assert!(
        kinds(&v(json!({"minLength": 1})), &v(json!({"minLength": 2})))
            .iter()
            .any(|k| k.contains("MIN_LENGTH_INCREASED"))
    );
    let n = |extra: Value| {
        let mut s = json!({"type": "integer"});
        if let Some(m) = s.as_object_mut() {
            m.extend(extra.as_object().cloned().unwrap_or_default());
        }
        s
    };
    assert!(
        kinds(&n(json!({"maximum": 10})), &n(json!({"maximum": 5}))).iter().any(|k| k.contains("MAXIMUM_DECREASED"))
    );
    assert_eq!(kinds(&n(json!({"minimum": 0})), &n(json!({}))), Vec::<String>::new());
    assert_eq!(
        kinds(&json!({"type": "integer"}), &json!({"type": "number"})),
        Vec::<String>::new(),
        "integer → number widens"
    );
    assert!(!kinds(&json!({"type": "number"}), &json!({"type": "integer"})).is_empty());
    assert!(
        !kinds(
            &json!({"type": "array", "items": {"type": "string"}}),
            &json!({"type": "array", "items": {"type": "integer"}})
        )
        .is_empty()
    );
    assert!(!kinds(&json!(true), &json!({"type": "string"})).is_empty(), "anything → string narrows");
    assert_eq!(kinds(&json!({"type": "string"}), &json!({})), Vec::<String>::new(), "string → anything widens");
}
