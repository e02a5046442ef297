//! `paybridge schema register` as a process against the Schema Registry stand-in.

use crate::support;

use std::process::{Command, Output};

use paybridge::schemas::event_schema;
use serde_json::{Value, json};
use support::child::{OutputWithin, QUICK};
use support::registry::{Access, Registry};

const DEFAULT_SUBJECT: &str = "paybridge.payment-events.v1-value";

fn paybridge(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(args)
        .env_remove("PAYBRIDGE_CONFIG")
        .env_remove("PAYBRIDGE_REGISTRY_BASIC_AUTH")
        .env_remove("PAYBRIDGE_REGISTRY_BEARER")
        .envs(env.iter().copied())
        .output_within(QUICK)
}

/// `paybridge schema register` with `args`.
fn register(args: &[&str], env: &[(&str, &str)]) -> Output {
    paybridge(&[&["schema", "register"], args].concat(), env)
}

/// A dry run of `schema` against `subject` of `registry`.
fn dry_run(registry: &str, subject: &str, schema: &str) -> Output {
    register(&["--registry", registry, "--subject", subject, "--schema", schema, "--dry-run"], &[])
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn write_json(dir: &tempfile::TempDir, name: &str, value: &Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

fn without_provider_state() -> Value {
    let mut schema = event_schema();
    let data = &mut schema["$defs"]["PaymentEvent"];
    if let Some(p) = data["properties"].as_object_mut() {
        p.remove("provider_state");
    }
    if let Some(r) = data["required"].as_array_mut() {
        r.retain(|v| v != "provider_state");
    }
    schema
}

#[test]
fn registering_prints_the_id_and_registering_again_the_same_id() {
    let registry = Registry::start(Access::Open);
    // Another subject first, so the event schema's id is not simply 1.
    registry.register("other-value", "JSON", &json!({"type": "string"})).unwrap_or_else(|e| panic!("{e}"));

    let first = register(&["--registry", &registry.url], &[]);
    let (out, err) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, format!("subject {DEFAULT_SUBJECT}: registered, schema id 2 (version 1, the subject's first)\n"));
    assert_eq!(registry.versions(DEFAULT_SUBJECT), vec![2]);
    assert_eq!(registry.schema(2), Some(event_schema()), "the registered schema is the one paybridge produces");

    let again = register(&["--registry", &registry.url], &[]);
    let (out, err) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}{err}");
    assert_eq!(
        out,
        format!("subject {DEFAULT_SUBJECT}: already registered, schema id 2 (version 1); nothing changed\n")
    );
    assert_eq!(registry.versions(DEFAULT_SUBJECT), vec![2], "nothing new registered");
    let registrations =
        registry.store().requests.iter().filter(|r| r.ends_with("/versions") && r.starts_with("POST")).count();
    assert_eq!(registrations, 1, "the second run only looked it up");
}

#[test]
fn a_broken_schema_is_refused_with_the_reason_and_nothing_is_registered() {
    let registry = Registry::start(Access::Open);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let registered = register(&["--registry", &registry.url, "--subject", "events-value"], &[]);
    assert_eq!(registered.status.code(), Some(0), "{:?}", text(&registered));

    let broken = write_json(&dir, "broken.json", &without_provider_state());
    let refused = register(&["--registry", &registry.url, "--subject", "events-value", "--schema", &broken], &[]);
    let (out, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("subject events-value: the registry refuses the schema; nothing registered"), "{err}");
    assert!(err.contains("incompatible with version 1"), "{err}");
    assert!(
        err.contains(
            "jsonPath='#/properties/data/properties/provider_state', type=PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
        ),
        "the registry's own reason is printed: {err}"
    );
    assert_eq!(registry.versions("events-value").len(), 1, "nothing registered");

    // A dry run of the same says the same and registers nothing either.
    let dry = dry_run(&registry.url, "events-value", &broken);
    assert_eq!(dry.status.code(), Some(1), "{:?}", text(&dry));

    // An added optional property is a new version.
    let mut grown = event_schema();
    grown["$defs"]["PaymentEvent"]["properties"]["settled_at"] = json!({"type": ["string", "null"]});
    let grown = write_json(&dir, "grown.json", &grown);
    let dry = dry_run(&registry.url, "events-value", &grown);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("dry run: the registry finds the schema compatible"), "{out}");
    assert_eq!(registry.versions("events-value").len(), 1, "a dry run registers nothing");
    let added = register(&["--registry", &registry.url, "--subject", "events-value", "--schema", &grown], &[]);
    let (out, err) = text(&added);
    assert_eq!(added.status.code(), Some(0), "{out}{err}");
    assert_eq!(out, "subject events-value: registered, schema id 2 (version 2)\n");
}

#[test]
fn a_dry_run_on_a_new_subject_registers_nothing() {
    let registry = Registry::start(Access::Open);
    let dry = register(&["--registry", &registry.url, "--dry-run"], &[]);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("dry run: the subject is new"), "{out}");
    assert!(registry.versions(DEFAULT_SUBJECT).is_empty());
}

#[test]
fn registry_errors_are_shown_as_such_and_credentials_never() {
    let registry = Registry::start(Access::Basic("ops".into(), "right-pass-4821".into()));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    };
    let wrong_file = file("wrong", "ops:wrong-pass-9137\n");
    let insecure = "--allow-insecure-http";
    let wrong = register(&["--registry", &registry.url, insecure, "--basic-auth-file", &wrong_file], &[]);
    let (out, err) = text(&wrong);
    assert_eq!(wrong.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("the registry answered 401: Unauthorized (error_code 40101)"), "{err}");
    assert!(!out.contains("wrong-pass-9137") && !err.contains("wrong-pass-9137"), "{out}{err}");

    let right_env = [("PAYBRIDGE_REGISTRY_BASIC_AUTH", "ops:right-pass-4821")];
    // Credentials go to a plain-HTTP registry only when the flag says so.
    let refused = register(&["--registry", &registry.url], &right_env);
    let (out, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("is plain http://") && err.contains("--allow-insecure-http"), "{err}");
    assert!(registry.versions(DEFAULT_SUBJECT).is_empty());
    let right = register(&["--registry", &registry.url, insecure], &right_env);
    let (out, err) = text(&right);
    assert_eq!(right.status.code(), Some(0), "{out}{err}");
    assert!(!out.contains("right-pass-4821") && !err.contains("right-pass-4821"));

    let bearer = Registry::start(Access::Bearer("token-5521".into()));
    let token_file = file("token", "token-5521");
    let with_token = register(&["--registry", &bearer.url, insecure, "--bearer-file", &token_file], &[]);
    assert_eq!(with_token.status.code(), Some(0), "{:?}", text(&with_token));
    let without = register(&["--registry", &bearer.url, insecure], &[]);
    assert_eq!(without.status.code(), Some(1), "{:?}", text(&without));

    // Nobody listening: said so, exit 1.
    let gone = format!("http://127.0.0.1:{}", support::free_port());
    let unreachable = register(&["--registry", &gone], &[]);
    let (_, err) = text(&unreachable);
    assert_eq!(unreachable.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the registry"), "{err}");
}

#[test]
fn the_config_gives_registry_subject_and_credentials() {
    let registry = Registry::start(Access::Basic("ops".into(), "conf-pass-7710".into()));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("paybridge.toml");
    let config = format!(
        "[kafka]\nbootstrap_servers = \"localhost:9092\"\ntopic = \"payments.events\"\n\n\
         [kafka.schema_registry]\nurl = \"{}\"\nallow_insecure_http = true\nusername = \"ops\"\npassword = \"${{REGISTRY_PASSWORD}}\"\n",
        registry.url
    );
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    let path = path.display().to_string();
    let registered = register(&["--config", &path], &[("REGISTRY_PASSWORD", "conf-pass-7710")]);
    let (out, err) = text(&registered);
    assert_eq!(registered.status.code(), Some(0), "{out}{err}");
    assert!(out.starts_with("subject payments.events-value: registered, schema id 1"), "TopicNameStrategy: {out}");
    assert!(!out.contains("conf-pass-7710") && !err.contains("conf-pass-7710"));
    assert_eq!(registry.versions("payments.events-value"), vec![1]);

    // A flag beats the config.
    let other = register(&["--config", &path, "--subject", "custom"], &[("REGISTRY_PASSWORD", "conf-pass-7710")]);
    assert_eq!(other.status.code(), Some(0), "{:?}", text(&other));
    assert_eq!(registry.versions("custom"), vec![1], "same schema, same id under another subject");
}

#[test]
fn bad_input_exits_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let not_json = dir.path().join("schema.json");
    std::fs::write(&not_json, "{ not json").unwrap_or_else(|e| panic!("{e}"));
    let not_json = not_json.display().to_string();
    let no_colon = dir.path().join("no-colon");
    std::fs::write(&no_colon, "no-colon").unwrap_or_else(|e| panic!("{e}"));
    let no_colon = no_colon.display().to_string();
    for (args, expected) in [
        (vec!["schema", "register"], "name the registry with --registry"),
        (vec!["schema", "register", "--registry", "http://localhost:1", "--basic-auth-file", &no_colon], "USER:PASS"),
        // Credentials never on the command line, where `ps` shows them.
        (vec!["schema", "register", "--registry", "https://localhost:1", "--basic-auth", "u:secretpw"], "--basic-auth"),
        (vec!["schema", "register", "--registry", "https://localhost:1", "--bearer", "secretpw"], "--bearer"),
        (
            vec!["schema", "register", "--registry", "https://localhost:1", "--bearer-file", "/nonexistent/t"],
            "/nonexistent/t",
        ),
        (vec!["schema", "register", "--registry", "http://u:secretpw@localhost:1"], "must not carry credentials"),
        (vec!["schema", "register", "--registry", "localhost:8081"], "registry URL must start with http"),
        (vec!["schema", "register", "--registry", "ftp://u:secretpw@localhost:1"], "registry URL must start with http"),
        (vec!["schema", "register", "--registry", "http://u:secretpw@[::1"], "not a valid URL"),
        (vec!["schema", "register", "--registry", "http://localhost:1", "--schema", &not_json], "is not JSON"),
    ] {
        let output = paybridge(&args, &[]);
        let (out, err) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("secretpw"), "{err}");
    }
}
