//! The committed schemas are the ones the code generates, and every example event
//! (one per provider, normalized from the provider documents' samples) validates.
//!
//! Regenerate after an intended change: `PAYBRIDGE_BLESS=1 cargo test --test contract schemas::`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use paybridge::event::{CanonicalEvent, RawJson};
use paybridge::normalize::{checkout, payments_direct, ripplenet};
use paybridge::schemas::{CONFIG_SCHEMA_FILE, EVENT_SCHEMA_FILE, config_schema, event_schema, render};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn blessing() -> bool {
    std::env::var_os("PAYBRIDGE_BLESS").is_some()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn check_committed(file: &str, generated: &str, how: &str) {
    let path = root().join(file);
    if blessing() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{file} differs from what the code generates.\n\
         If the change is intended (additive only!), regenerate it with:\n    {how}\n\
         or all at once with:\n    PAYBRIDGE_BLESS=1 cargo test --test contract schemas::"
    );
}

#[test]
fn committed_event_schema_is_generated() {
    check_committed(
        EVENT_SCHEMA_FILE,
        &render(&event_schema()),
        "cargo run -- schema event > schemas/payment-event.v1.schema.json",
    );
}

/// The docs site's configuration reference, generated from the same schema.
const CONFIG_REFERENCE: &str = "docs/src/reference/configuration.md";

#[test]
fn committed_configuration_reference_is_generated() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["config", "reference"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run paybridge: {e}"));
    assert!(output.status.success(), "paybridge config reference failed: {output:?}");
    let generated = String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
    assert!(generated.starts_with("# Configuration reference\n"), "{generated}");
    check_committed(CONFIG_REFERENCE, &generated, "./scripts/docs --bless");
}

#[test]
fn committed_config_schema_is_generated() {
    check_committed(
        CONFIG_SCHEMA_FILE,
        &render(&config_schema()),
        "cargo run -- schema config > schemas/config.schema.json",
    );
}

const CHART_VALUES_SCHEMA: &str = "deploy/helm/paybridge/values.schema.json";

/// The chart's values schema as committed, with `properties.config` and `$defs` replaced by
/// the configuration schema the code generates: the chart refuses at install what
/// `paybridge run` would refuse at start (a misspelt key, a wrong type, an unknown source
/// kind).
fn chart_values_schema() -> String {
    let mut values = read_json(&root().join(CHART_VALUES_SCHEMA));
    let Value::Object(mut config) = config_schema() else { panic!("the config schema is not an object") };
    let defs = config.remove("$defs").unwrap_or_default();
    for key in ["$schema", "$id", "title"] {
        config.remove(key);
    }
    config.insert(
        "description".into(),
        Value::String(
            "paybridge's configuration file as values, rendered into the ConfigMap as paybridge.toml \
             (schemas/config.schema.json)"
                .into(),
        ),
    );
    values["properties"]["config"] = Value::Object(config);
    values["$defs"] = defs;
    render(&values)
}

#[test]
fn the_chart_values_schema_carries_the_config_schema() {
    check_committed(
        CHART_VALUES_SCHEMA,
        &chart_values_schema(),
        "PAYBRIDGE_BLESS=1 cargo test --test contract schemas::",
    );
}

/// A fixed observation time, so the examples are reproducible.
fn observed() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

fn fixture(rel: &str) -> Value {
    read_json(&root().join("tests/fixtures").join(rel))
}

/// (example file, the event normalized from a provider-document sample)
fn examples() -> Vec<(&'static str, CanonicalEvent)> {
    let ok = |r: Result<CanonicalEvent, paybridge::normalize::NormalizeError>| {
        r.unwrap_or_else(|e| panic!("a provider-document sample failed to normalize: {e}"))
    };
    vec![
        (
            "ripplenet.json",
            ok(ripplenet::notification(
                "acme-ripplenet",
                &RawJson::from_value(&fixture("ripplenet/poll-new-page.json")[0]),
                observed(),
            )),
        ),
        (
            "checkout.json",
            ok(checkout::message(
                "merchant-001",
                &RawJson::from_value(&fixture("checkout/receive-response.json")["messages"][0]),
                observed(),
            )),
        ),
        (
            "payments_direct.json",
            ok(payments_direct::payment(
                "acme-rpd",
                &fixture("payments_direct/search-response.json")["data"][1],
                payments_direct::Via::default(),
                observed(),
            )),
        ),
    ]
}

#[test]
fn committed_examples_are_the_normalized_provider_samples() {
    for (file, event) in examples() {
        let rel = format!("schemas/examples/{file}");
        // Through a tree, so `data.raw` (kept as the provider's text) is indented too.
        let tree = serde_json::to_value(&event).unwrap_or_default();
        let mut text = serde_json::to_string_pretty(&tree).unwrap_or_default();
        text.push('\n');
        check_committed(&rel, &text, "PAYBRIDGE_BLESS=1 cargo test --test contract schemas::");
    }
}

#[test]
fn every_example_validates_against_the_event_schema() {
    let schema = read_json(&root().join(EVENT_SCHEMA_FILE));
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("the event schema is invalid: {e}"));
    let dir = root().join("schemas/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let example = read_json(&path);
        let errors: Vec<String> =
            validator.iter_errors(&example).map(|e| format!("{}: {e}", e.instance_path().as_str())).collect();
        assert!(errors.is_empty(), "{} does not validate:\n{}", path.display(), errors.join("\n"));
        let parsed: Result<CanonicalEvent, _> = serde_json::from_value(example);
        assert!(parsed.is_ok(), "{} does not parse as CanonicalEvent: {parsed:?}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "expected at least one example per provider, found {seen}");
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let schema = read_json(&root().join(EVENT_SCHEMA_FILE));
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    let (_, event) = examples().remove(0);
    let good = serde_json::to_value(&event).unwrap_or_default();
    assert!(validator.is_valid(&good));
    let mut bad_state = good.clone();
    bad_state["data"]["state"] = Value::from("teleported");
    assert!(!validator.is_valid(&bad_state), "an unknown canonical state must be `unknown`, not a free string");
    let mut no_id = good.clone();
    if let Some(map) = no_id.as_object_mut() {
        map.remove("id");
    }
    assert!(!validator.is_valid(&no_id));
    let mut bad_version = good;
    bad_version["specversion"] = Value::from("0.3");
    assert!(!validator.is_valid(&bad_version));
}
