//! `paybridge run` with `[kafka.schema_registry]`: the start-up contract check and the
//! Confluent wire format, against the registry stand-in, the sandbox and a real broker.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use paybridge::event::CanonicalEvent;
use paybridge::schemas::event_schema;
use serde_json::{Value, json};
use support::child::OutputWithin;
use support::process::{Paybridge, eventually};
use support::registry::{Access, Registry};
use support::ripplenet::{FAST, acked, config, read, setup};

fn registry_section(registry: &Registry, extra: &str) -> String {
    format!(
        "\n[kafka.schema_registry]\nurl = \"{}\"\nallow_insecure_http = true\nusername = \"ops\"\npassword = \"${{REGISTRY_PASSWORD}}\"\n{extra}\n",
        registry.url
    )
}

const PASSWORD: &str = "wire-pass-3390";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_framed_records_carry_the_registry_id_and_decode() {
    let s = setup().await;
    let registry = Registry::start(Access::Basic("ops".into(), PASSWORD.into()));
    registry.register("other-value", "JSON", &json!({"type": "string"})).unwrap_or_else(|e| panic!("{e}"));
    let subject = format!("{}-value", s.topic);
    let id = registry.register(&subject, "JSON", &event_schema()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(id, 2);
    s.sandbox.create(20).await;

    let text = config(&s, FAST) + &registry_section(&registry, "wire_format = true");
    let bridge = Paybridge::spawn_with_env(&text, &[("REGISTRY_PASSWORD", PASSWORD)]);
    eventually("20 acknowledged", Duration::from_secs(30), || async { acked(&s.sandbox).await == 20 }).await;
    let log = bridge.log();
    assert!(log.contains("the event schema is the subject's latest version"), "{log}");
    assert!(!log.contains(PASSWORD), "the registry password is never logged");

    let (broker, records) = read(s.broker, s.topic.clone()).await;
    assert!(records.len() >= 20, "{} records", records.len());
    let schema = registry.schema(id).unwrap_or_default();
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{e}"));
    for record in &records {
        let value = record.value.clone();
        assert!(value.len() > 5, "{value:?}");
        assert_eq!(value[0], 0, "magic byte");
        let framed_id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
        assert_eq!(framed_id, id, "the registry's id of the schema");
        let json: Value =
            serde_json::from_slice(&value[5..]).unwrap_or_else(|e| panic!("not JSON after the frame: {e}"));
        assert!(validator.is_valid(&json), "validates against the registered schema: {json}");
        let event: CanonicalEvent = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(record.header("ce_id"), Some(event.id.to_string().as_str()), "the CloudEvents headers stay");
    }

    // paybridge tail reads framed values too.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tail_config = dir.path().join("tail.toml");
    let tail_text = format!("[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{}\"\n", broker.bootstrap(), s.topic);
    std::fs::write(&tail_config, tail_text).unwrap_or_else(|e| panic!("{e}"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args([
                "-s",
                "INT",
                "8",
                env!("CARGO_BIN_EXE_paybridge"),
                "tail",
                "--from-beginning",
                "--format",
                "json",
                "--config",
            ])
            .arg(&tail_config)
            .output_within(Duration::from_secs(60))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let events: Vec<CanonicalEvent> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(events.len(), records.len(), "every framed record is printed as its JSON: {stdout}");
}

/// `paybridge run` that must refuse to start: its exit code and stderr.
fn refused_start(config_text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("paybridge.toml");
    let port = support::free_port();
    let text = config_text.replace("{admin}", &port.to_string()).replace("{intake}", &support::free_port().to_string());
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["run", "--config"])
        .arg(&path)
        .env("REGISTRY_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output_within(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = out.status;
    (status.code(), stderr)
}

fn minimal_config(registry: &Registry, extra: &str) -> String {
    // No broker is needed: the contract is checked before Kafka is contacted.
    format!(
        "[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"pay.events\"\n\n[admin]\nlisten = \"127.0.0.1:{{admin}}\"\n{}",
        registry_section(registry, extra)
    )
}

#[test]
fn run_refuses_to_start_without_a_schema_or_against_an_incompatible_one() {
    let registry = Registry::start(Access::Basic("ops".into(), PASSWORD.into()));
    let (code, err) = refused_start(&minimal_config(&registry, ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("pay.events-value") && err.contains("has no schema in the registry"), "{err}");
    assert!(err.contains("paybridge schema register"), "{err}");

    // The subject's latest version has a property paybridge's schema does not: the registry
    // would refuse paybridge's schema, and so does paybridge.
    let mut newer = event_schema();
    newer["$defs"]["PaymentEvent"]["properties"]["settled_at"] = json!({"type": ["string", "null"]});
    registry.register("pay.events-value", "JSON", &newer).unwrap_or_else(|e| panic!("{e}"));
    let (code, err) = refused_start(&minimal_config(&registry, ""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("incompatible with version 1"), "{err}");
    assert!(err.contains("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"), "the registry's reason: {err}");
    assert!(!err.contains(PASSWORD));
}

#[test]
fn wire_format_refuses_to_start_until_the_schema_is_registered() {
    let registry = Registry::start(Access::Basic("ops".into(), PASSWORD.into()));
    // An older version without `errors`: paybridge's schema is compatible with it but not
    // registered, so there is no id to frame values with.
    let mut older = event_schema();
    if let Some(p) = older["$defs"]["PaymentEvent"]["properties"].as_object_mut() {
        p.remove("errors");
    }
    registry.register("pay.events-value", "JSON", &older).unwrap_or_else(|e| panic!("{e}"));
    let (code, err) = refused_start(&minimal_config(&registry, "wire_format = true"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("wire_format needs its id"), "{err}");

    // A subject (set by name) holding an unrelated schema.
    registry.register("strings-value", "JSON", &json!({"type": "string"})).unwrap_or_else(|e| panic!("{e}"));
    let (code, err) = refused_start(&minimal_config(&registry, "subject = \"strings-value\""));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("incompatible"), "a string schema cannot read events: {err}");
}

#[test]
fn an_unreachable_registry_is_retried_then_refused() {
    let registry = Registry::start(Access::Open);
    let url = format!("http://127.0.0.1:{}", support::free_port());
    let text = minimal_config(&registry, "startup_timeout = \"2s\"").replace(&registry.url, &url);
    let started = Instant::now();
    let (code, err) = refused_start(&text);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach the registry"), "{err}");
    assert!(err.contains("trying again"), "retried before giving up: {err}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "kept trying for startup_timeout");
}
