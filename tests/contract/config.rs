//! Config loading: every error with its key path, environment overrides, interpolation,
//! secrets never echoed, and the documented example.

use crate::support::child;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use child::{OutputWithin, QUICK};
use paybridge::config::{Config, ConfigErrors, load};
use serde_json::Value;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn errors(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match load(text, &env(vars)) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect(),
    }
}

fn loaded(text: &str, vars: &[(&str, &str)]) -> Config {
    load(text, &env(vars)).unwrap_or_else(|e| panic!("expected a valid config: {e}"))
}

const MINIMAL: &str = "[kafka]\nbootstrap_servers = \"localhost:9092\"\n";

/// A Checkout source named `name` with only its required keys.
fn checkout(name: &str) -> String {
    format!(
        "[[sources]]\nkind = \"checkout\"\nname = \"{name}\"\nbase_url = \"https://checkout.example/v1\"\n\
         merchant_id = \"m1\"\n[sources.auth]\ntoken_url = \"https://idp.example/token\"\nclient_id = \"c\"\n\
         resource = \"r\"\nprivate_key_path = \"/k.pem\"\nkey_id = \"AB\"\n"
    )
}

/// A RippleNet source named `name` with only its required keys.
fn ripplenet(name: &str) -> String {
    format!(
        "[[sources]]\nkind = \"ripplenet\"\nname = \"{name}\"\nbase_url = \"https://rn.example\"\n\
         [sources.auth]\ntoken_url = \"https://rn.example/oauth/token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         audience = \"a\"\n"
    )
}

/// A Payments Direct source named `name` with only its required keys.
fn payments_direct(name: &str) -> String {
    format!(
        "[[sources]]\nkind = \"payments_direct\"\nname = \"{name}\"\nbase_url = \"https://api.test.ripple.com\"\n\
         [sources.auth]\ntoken_url = \"https://api.test.ripple.com/v2/oauth/token\"\nclient_id = \"c\"\n\
         client_secret = \"s\"\naudience = \"urn:ripplexcurrent-test:acme\"\n"
    )
}

#[test]
fn payments_direct_defaults_and_start_from() {
    let c = loaded(&format!("{MINIMAL}{}", payments_direct("pd")), &[]);
    let Some(paybridge::config::SourceConfig::PaymentsDirect(src)) = c.sources.first() else {
        panic!("{:?}", c.sources)
    };
    assert_eq!(src.search_path, "/v3/payments/filter");
    assert_eq!((src.interval.get().as_secs(), src.max_idle_interval.get().as_secs()), (60, 600));
    assert_eq!((src.page_size, src.safety_lag.get().as_secs(), src.alert_after), (100, 5, 5));
    assert!(src.enrich_failures && !src.webhook.enabled);
    assert_eq!(src.start_from, paybridge::config::StartFrom::Ago(paybridge::config::HumanDuration::from_secs(3600)));
    let with = |line: &str| {
        format!("{MINIMAL}{}", payments_direct("pd")).replacen("base_url", &format!("{line}\nbase_url"), 1)
    };
    let at = loaded(&with("start_from = \"2026-11-01T00:00:00Z\""), &[]);
    let Some(paybridge::config::SourceConfig::PaymentsDirect(src)) = at.sources.first() else { panic!() };
    assert!(matches!(src.start_from, paybridge::config::StartFrom::At(_)));
    let list = errors(&with("start_from = \"last week\""), &[]);
    assert_eq!(
        list,
        vec![
            "sources[0].start_from: invalid start_from; use an RFC 3339 time (\"2026-11-01T08:00:00Z\") or a duration ago (\"2h\")"
        ]
    );
    let list = errors(&with("page_size = 101"), &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].page_size")), "{list:?}");
}

#[test]
fn a_duration_of_many_digits_is_refused_with_its_key_named() {
    let list = errors(&format!("{MINIMAL}delivery_timeout = \"18446744073709551615s\"\n"), &[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].starts_with("kafka.delivery_timeout: ") && list[0].contains("longer than 7 days"), "{list:?}");
    let source = payments_direct("pd").replacen("base_url", "interval = \"8d\"\nbase_url", 1);
    let list = errors(&format!("{MINIMAL}{source}"), &[]);
    // Inside a source too, the key is named.
    assert!(
        list.iter().any(|e| e.starts_with("sources[0].interval: ") && e.contains("longer than 7 days")),
        "{list:?}"
    );
    let nested = format!(
        "{}[sources.webhook]\nenabled = true\nallow = [\"10.0.0.0/8\"]\ncommit_timeout = \"9d\"\n",
        payments_direct("pd")
    );
    let list = errors(&format!("{MINIMAL}{nested}"), &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].webhook.commit_timeout: ")), "{list:?}");
    // The same through the environment.
    let list = errors(MINIMAL, &[("PAYBRIDGE_KAFKA__METADATA_TIMEOUT", "99999999999999h")]);
    assert!(
        list.iter().any(|e| e.starts_with("kafka.metadata_timeout: ") && e.contains("longer than 7 days")),
        "{list:?}"
    );
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_command_reports_all_three_mistakes_and_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bad.toml");
    let text = "[kafka]\ntopic = \"events\"\ncolour = \"blue\"\ndelivery_timeout = \"10 parsecs\"\n";
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["config", "validate", "--config"])
        .arg(&file)
        .env_remove("PAYBRIDGE_KAFKA__BOOTSTRAP_SERVERS")
        .output_within(QUICK);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("kafka.colour: unknown key"), "{stderr}");
    assert!(stderr.contains("kafka.delivery_timeout: invalid duration"), "{stderr}");
    assert!(stderr.contains("kafka.bootstrap_servers: missing required key"), "{stderr}");
    assert!(stderr.contains("3 configuration errors"), "{stderr}");
}

#[test]
fn validate_command_accepts_the_example_and_exits_0() {
    // Its Checkout key lives where the deployment mounts it; everything else is checked here.
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["config", "validate", "--no-file-checks", "--config"])
        .arg(root().join("examples/paybridge.toml"))
        .output_within(QUICK);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

fn validate(text: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("paybridge.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["config", "validate", "--config"])
        .arg(&path)
        .args(extra)
        .env_remove("PAYBRIDGE_CONFIG")
        .output_within(QUICK);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_toml_syntax_error_is_reported_with_its_line_and_column_and_not_its_text() {
    let text = "[kafka]\nbootstrap_servers = \"kafka:9092\"\nsasl_secret = \"hunter2\nx = 1\n";
    let (code, stderr) = validate(text, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("line 3, column 23: not valid TOML"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the line's text (a secret, maybe) is echoed: {stderr}");
}

#[test]
fn an_unknown_key_gets_the_closest_known_one_at_its_place() {
    let text = format!(
        "{MINIMAL}delivery_timout = \"30s\"\nfrobnicate = 1\n[intake]\nlsten = \"0.0.0.0:1\"\n{}",
        ripplenet("rn").replacen("name = ", "new_intervall = \"1s\"\nname = ", 1)
    );
    let list = errors(&text, &[]);
    for expected in [
        "kafka.delivery_timout: unknown key; did you mean delivery_timeout?",
        "kafka.frobnicate: unknown key",
        "intake.lsten: unknown key; did you mean listen?",
        "sources[0].new_intervall: unknown key; did you mean new_interval?",
    ] {
        assert!(list.iter().any(|e| e == expected), "{expected:?} not in {list:?}");
    }
    // A key of another kind is not offered for this one (Payments Direct's `interval` for a
    // RippleNet source's `intervall`).
    let text = format!("{MINIMAL}{}", ripplenet("rn").replacen("name = ", "intervall = \"1s\"\nname = ", 1));
    let list = errors(&text, &[]);
    assert!(list.iter().any(|e| e == "sources[0].intervall: unknown key"), "{list:?}");
}

#[test]
fn validate_and_run_refuse_a_key_file_that_does_not_exist_or_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = dir.path().join("checkout.pem");
    let text = format!("{MINIMAL}{}", checkout("co"))
        .replace("private_key_path = \"/k.pem\"", &format!("private_key_path = \"{}\"", key.display()));
    assert!(text.contains("private_key_path"), "{text}");
    let (code, stderr) = validate(&text, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("sources[0].auth.private_key_path: {} does not exist", key.display())),
        "{stderr}"
    );
    let (code, stderr) = validate(&text, &["--no-file-checks"]);
    assert_eq!(code, Some(0), "{stderr}");
    // `run` refuses it before it starts anything.
    let config = dir.path().join("run.toml");
    std::fs::write(&config, &text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge")).args(["run", "--config"]).arg(&config).output_within(QUICK);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("private_key_path") && stderr.contains("does not exist"), "{stderr}");
    // A directory is not a key file; a readable file passes.
    std::fs::create_dir(&key).unwrap_or_else(|e| panic!("{e}"));
    let (code, stderr) = validate(&text, &[]);
    assert!(code == Some(2) && stderr.contains("is a directory"), "{stderr}");
    std::fs::remove_dir(&key).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap_or_else(|e| panic!("{e}"));
    let (code, stderr) = validate(&text, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // librdkafka's file properties are checked the same way.
    let text =
        MINIMAL.replacen("[kafka]", "[kafka.properties]\n\"ssl.ca.location\" = \"/nonexistent/ca.pem\"\n[kafka]", 1);
    let (code, stderr) = validate(&text, &[]);
    assert!(
        code == Some(2) && stderr.contains("kafka.properties.\"ssl.ca.location\": /nonexistent/ca.pem does not exist"),
        "{stderr}"
    );
}

#[test]
fn example_documents_every_key_of_the_schema() {
    let text = std::fs::read_to_string(root().join("examples/paybridge.toml")).unwrap_or_default();
    let config = loaded(&text, &[]);
    assert_eq!(config.sources.len(), 3, "one source of each kind");
    let schema = paybridge::schemas::config_schema();
    let mut keys = Vec::new();
    collect_keys(&schema, &schema, &mut keys);
    let missing: Vec<&String> = keys.iter().filter(|k| !text.contains(&format!("{k} ="))).collect();
    assert!(missing.is_empty(), "examples/paybridge.toml does not document: {missing:?}");
}

fn collect_keys(node: &Value, root: &Value, out: &mut Vec<String>) {
    if let Some(target) =
        node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p))
    {
        collect_keys(target, root, out);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, sub) in props {
            let is_table = sub.get("$ref").is_some() || sub.get("type") == Some(&Value::from("array"));
            if !is_table && key != "properties" && !out.contains(key) {
                out.push(key.clone());
            }
            collect_keys(sub, root, out);
        }
    }
    for keyword in ["items", "then"] {
        if let Some(sub) = node.get(keyword) {
            collect_keys(sub, root, out);
        }
    }
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        all.iter().for_each(|s| collect_keys(s, root, out));
    }
}

#[test]
fn defaults_are_sensible() {
    let c = loaded(MINIMAL, &[]);
    assert_eq!(c.kafka.topic, "paybridge.payment-events.v1");
    assert_eq!(c.kafka.dlq_topic, "paybridge.payment-events.dlq");
    assert_eq!(c.shutdown.timeout.get().as_secs(), 25);
    assert_eq!(c.admin.listen.to_string(), "0.0.0.0:9090");
    assert!(!c.kafka.create_topics);
    assert!(c.sources.is_empty());
    assert_eq!(c.log.level, "info", "a missing [log] section still logs at info");
    assert_eq!(c.kafka.delivery_timeout.get().as_secs(), 30);
    let with_empty_sections = loaded(&format!("{MINIMAL}[log]\n[shutdown]\n[admin]\n"), &[]);
    assert_eq!(with_empty_sections.log.level, "info");
    assert_eq!(with_empty_sections.shutdown.timeout.get().as_secs(), 25);
}

#[test]
fn environment_overrides_every_kind_of_key() {
    let text = format!("{MINIMAL}{}", checkout("c1"));
    let c = loaded(
        &text,
        &[
            ("PAYBRIDGE_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092"),
            ("PAYBRIDGE_KAFKA__TOPIC_PARTITIONS", "12"),
            ("PAYBRIDGE_KAFKA__CREATE_TOPICS", "true"),
            ("PAYBRIDGE_KAFKA__DELIVERY_TIMEOUT", "45s"),
            ("PAYBRIDGE_KAFKA__PROPERTIES__SASL_USERNAME", "svc"),
            ("PAYBRIDGE_SOURCES__0__ACCOUNT", "12345"),
            ("PAYBRIDGE_ADMIN__LISTEN", "127.0.0.1:9999"),
        ],
    );
    assert_eq!(c.kafka.bootstrap_servers, "k1:9092,k2:9092");
    assert_eq!(c.kafka.topic_partitions, 12);
    assert!(c.kafka.create_topics);
    assert_eq!(c.kafka.delivery_timeout.get().as_secs(), 45);
    assert_eq!(c.kafka.properties.get("sasl.username").map(String::as_str), Some("svc"));
    assert_eq!(c.sources[0].account(), "12345", "a numeric-looking value stays a string where a string is expected");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9999");
}

#[test]
fn environment_can_supply_a_missing_required_key() {
    let c = loaded("[kafka]\n", &[("PAYBRIDGE_KAFKA__BOOTSTRAP_SERVERS", "b:9092")]);
    assert_eq!(c.kafka.bootstrap_servers, "b:9092");
}

#[test]
fn bad_environment_values_name_the_variable() {
    let list = errors(MINIMAL, &[("PAYBRIDGE_KAFKA__TOPIC_PARTITIONS", "many"), ("PAYBRIDGE_KAFKA__NOPE", "x")]);
    assert!(
        list.iter().any(|e| e.starts_with("kafka.topic_partitions") && e.contains("PAYBRIDGE_KAFKA__TOPIC_PARTITIONS")),
        "{list:?}"
    );
    assert!(list.iter().any(|e| e.starts_with("kafka.nope: unknown key")), "{list:?}");
}

#[test]
fn interpolation_reads_variables_and_reports_missing_ones() {
    let text =
        "[kafka]\nbootstrap_servers = \"${BROKERS}\"\n[kafka.properties]\n\"sasl.password\" = \"${KAFKA_PASSWORD}\"\n";
    let c = loaded(text, &[("BROKERS", "b:9092"), ("KAFKA_PASSWORD", "hunter2")]);
    assert_eq!(c.kafka.properties.get("sasl.password").map(String::as_str), Some("hunter2"));
    let list = errors(text, &[("BROKERS", "b:9092")]);
    assert_eq!(list, vec!["kafka.properties.\"sasl.password\": environment variable KAFKA_PASSWORD is not set"]);
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let text = "[kafka]\nbootstrap_servers = \"b:9092\"\ntopic_partitions = \"${SECRET}\"\n[kafka.properties]\n\"sasl.password\" = \"${SECRET}\"\n";
    let list = errors(text, &[("SECRET", "hunter2-topsecret")]);
    assert!(!list.is_empty());
    assert!(list.iter().all(|e| !e.contains("hunter2")), "{list:?}");
    let c =
        loaded("[kafka]\nbootstrap_servers = \"b:9092\"\n[kafka.properties]\n\"sasl.password\" = \"hunter2\"\n", &[]);
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn forced_producer_properties_are_rejected_with_the_alternative() {
    let text = format!(
        "{MINIMAL}[kafka.properties]\nacks = \"1\"\n\"enable.idempotence\" = \"false\"\n\"message.timeout.ms\" = \"5\"\n"
    );
    let list = errors(&text, &[]);
    assert!(list.iter().any(|e| e.contains("\"acks\"") && e.contains("acks=all")), "{list:?}");
    assert!(list.iter().any(|e| e.contains("enable.idempotence")), "{list:?}");
    assert!(list.iter().any(|e| e.contains("kafka.delivery_timeout")), "{list:?}");
}

#[test]
fn source_mistakes_point_inside_the_source() {
    let text = format!(
        "{MINIMAL}[[sources]]\nkind = \"ripplenet\"\nname = \"Bad Name\"\nextra = 1\n\
         [[sources]]\nkind = \"carrier_pigeon\"\nname = \"p\"\n\
         {}[[sources]]\nkind = \"payments_direct\"\nname = \"dup\"\n",
        checkout("dup")
    );
    let list = errors(&text, &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].name: invalid name")), "{list:?}");
    assert!(list.iter().any(|e| e.starts_with("sources[0].extra: unknown key")), "{list:?}");
    assert!(list.iter().any(|e| e.starts_with("sources[1].kind: must be one of")), "{list:?}");
    // Duplicate names are a semantic check, reported once the shape is right.
    let dup = format!("{MINIMAL}{}{}", checkout("dup"), payments_direct("dup"));
    let list = errors(&dup, &[]);
    assert_eq!(list, vec!["sources[1].name: duplicate source name \"dup\" (also sources[0])"]);
}

#[test]
fn cross_key_and_format_checks() {
    let text = "[kafka]\nbootstrap_servers = \"nohostport\"\ntopic = \"same\"\ndlq_topic = \"same\"\n\
                [admin]\nlisten = \"127.0.0.1:80\"\n[intake]\nlisten = \"127.0.0.1:80\"\n";
    let list = errors(text, &[]);
    assert!(list.iter().any(|e| e.starts_with("kafka.bootstrap_servers:")), "{list:?}");
    assert!(list.iter().any(|e| e.starts_with("kafka.dlq_topic: must differ")), "{list:?}");
    assert!(list.iter().any(|e| e.starts_with("intake.listen: must differ")), "{list:?}");
    let list = errors("[kafka]\nbootstrap_servers = \"b:1\"\n[admin]\nlisten = \"localhost\"\n", &[]);
    assert!(list.iter().any(|e| e.starts_with("admin.listen: invalid listen address")), "{list:?}");
}

#[test]
fn broken_toml_is_an_error_not_a_panic() {
    for text in ["[kafka", "kafka = 1", "", "[[kafka]]\nx=1", "[kafka]\nbootstrap_servers = 9092"] {
        assert!(load(text, &BTreeMap::new()).is_err(), "{text:?} should not load");
    }
}

/// Every file in examples/ is a paybridge configuration that loads (the simulator's
/// scenarios live next to it, in sandbox/scenarios/), and so is the compose file's.
#[test]
fn every_shipped_config_file_is_valid() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap_or_else(|e| panic!("examples/: {e}"))
        .filter_map(|entry| Some(format!("examples/{}", entry.ok()?.file_name().to_str()?)))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    files.push("deploy/compose/paybridge.toml".into());
    for rel in files {
        assert!(rel.ends_with(".toml"), "{rel}: examples/ holds paybridge configuration files only");
        let text = std::fs::read_to_string(root().join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        if let Err(e) = load(&text, &BTreeMap::new()) {
            panic!("{rel} is not a valid paybridge configuration: {e}");
        }
    }
}

#[test]
fn checkout_defaults_and_an_auto_ack_key_is_refused_with_the_reason() {
    let c = loaded(&format!("{MINIMAL}{}", checkout("c1")), &[]);
    let Some(paybridge::config::SourceConfig::Checkout(src)) = c.sources.first() else { panic!("{:?}", c.sources) };
    assert_eq!((src.max_messages, src.timeout.get().as_secs()), (10, 20));
    assert_eq!(src.receive_path, "/checkout/notifications/receive");
    assert_eq!(src.ack_path, "/checkout/notifications/ack");
    assert_eq!(src.history_path, "/checkout/notifications");
    assert_eq!((src.receivers, src.pages_in_flight), (4, 8));
    for bad in ["receivers = 0", "receivers = 65"] {
        let text = format!("{MINIMAL}{}", checkout("c1")).replacen("merchant_id", &format!("{bad}\nmerchant_id"), 1);
        let list = errors(&text, &[]);
        assert!(list.iter().any(|e| e.starts_with("sources[0].receivers")), "{bad}: {list:?}");
    }
    for key in ["auto_ack = true", "autoAck = true", "auto-ack-enabled = true"] {
        let text = format!("{MINIMAL}{}", checkout("c1")).replacen("merchant_id", &format!("{key}\nmerchant_id"), 1);
        let list = errors(&text, &[]);
        assert!(
            list.iter().any(|e| e.starts_with("sources[0].")
                && e.contains("autoAck is not supported")
                && e.contains("before the broker")),
            "{key}: {list:?}"
        );
    }
}

#[test]
fn a_known_visibility_timeout_must_hold_the_delivery_timeout_and_an_ack_call() {
    let with = |visibility: &str| {
        format!("{MINIMAL}delivery_timeout = \"20s\"\n{}", checkout("c1")).replacen(
            "merchant_id",
            &format!("visibility_timeout = \"{visibility}\"\nmerchant_id"),
            1,
        )
    };
    assert!(load(&with("31s"), &env(&[])).is_ok(), "20s + 10s fits in 31s");
    let list = errors(&with("30s"), &[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0].starts_with("sources[0].visibility_timeout: kafka.delivery_timeout (20s) plus request_timeout (10s)")
            && list[0].contains("lower kafka.delivery_timeout or request_timeout"),
        "{list:?}"
    );
    let c = loaded(&format!("{MINIMAL}{}", checkout("c1")), &[]);
    let Some(paybridge::config::SourceConfig::Checkout(src)) = c.sources.first() else { panic!("{:?}", c.sources) };
    assert!(src.visibility_timeout.is_none(), "unknown unless configured");
}

#[test]
fn a_checkout_source_needs_exactly_one_signing_key_and_valid_urls() {
    let both = format!("{MINIMAL}{}", checkout("c1")).replace("key_id", "private_key = \"pem\"\nkey_id");
    let list = errors(&both, &[]);
    assert_eq!(list, vec!["sources[0].auth: set one of private_key_path and private_key, not both"]);
    let none = format!("{MINIMAL}{}", checkout("c1")).replace("private_key_path = \"/k.pem\"\n", "");
    let list = errors(&none, &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].auth: the signing key is missing")), "{list:?}");
    let bad_url = format!("{MINIMAL}{}", checkout("c1")).replace("https://checkout.example/v1", "https://exa mple");
    let list = errors(&bad_url, &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].base_url: not a valid URL")), "{list:?}");
}

#[test]
fn the_transactional_id_prefix_defaults_to_the_client_id_and_is_checked() {
    assert_eq!(loaded(MINIMAL, &[]).kafka.transactional_prefix(), "paybridge");
    let client = loaded(&format!("{MINIMAL}[kafka.properties]\n\"client.id\" = \"billing-eu\"\n"), &[]);
    assert_eq!(client.kafka.transactional_prefix(), "billing-eu");
    let set = "[kafka]\nbootstrap_servers = \"localhost:9092\"\ntransactional_id_prefix = \"prod-eu\"\n";
    assert_eq!(loaded(set, &[]).kafka.transactional_prefix(), "prod-eu");
    for bad in ["", "two words", "x\\u0007"] {
        let text = format!("[kafka]\nbootstrap_servers = \"localhost:9092\"\ntransactional_id_prefix = \"{bad}\"\n");
        let list = errors(&text, &[]);
        assert!(list.iter().any(|e| e.contains("kafka.transactional_id_prefix")), "{bad:?}: {list:?}");
    }
    let list = errors(&format!("{MINIMAL}[kafka.properties]\n\"transactional.id\" = \"x\"\n"), &[]);
    assert!(list.iter().any(|e| e.contains("kafka.transactional_id_prefix")), "{list:?}");
}

#[test]
fn the_configuration_reference_documents_every_key_of_the_schema() {
    let reference = std::fs::read_to_string(root().join("docs/src/reference/configuration.md")).unwrap_or_default();
    let schema = paybridge::schemas::config_schema();
    let mut keys = Vec::new();
    collect_keys(&schema, &schema, &mut keys);
    // A key is documented when the first cell of a table row names it (`key`, or a path
    // ending in it: `auth.key_id`; one row may name several).
    let documented: std::collections::BTreeSet<&str> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("| ").and_then(|rest| rest.split(" | ").next()))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter_map(|path| path.rsplit('.').next())
        .collect();
    // Tables are headings of their own (`[cluster]`), and a source's `kind` heads its table.
    let headed =
        |key: &str| reference.contains(&format!("## `[{key}]`")) || reference.contains(&format!("### `{key} = "));
    let missing: Vec<&String> = keys.iter().filter(|k| !documented.contains(k.as_str()) && !headed(k)).collect();
    assert!(missing.is_empty(), "docs/src/reference/configuration.md does not document: {missing:?}");
}

/// A RippleNet source whose webhook is enabled, with `webhook` as extra lines of the webhook.
fn ripplenet_with_webhook(webhook: &str) -> String {
    format!(
        "[[sources]]\nkind = \"ripplenet\"\nname = \"rn\"\nbase_url = \"https://rn.example\"\n\
         [sources.auth]\ntoken_url = \"https://rn.example/oauth/token\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         audience = \"a\"\n[sources.webhook]\nenabled = true\n{webhook}\n"
    )
}

#[test]
fn a_webhook_path_open_to_anyone_is_refused_unless_explicitly_accepted() {
    let open = format!("{MINIMAL}{}", ripplenet_with_webhook(""));
    let list = errors(&open, &[]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].starts_with("sources[0].webhook: the webhook path is open to anyone"), "{list:?}");
    assert!(list[0].contains("intake.allow_unauthenticated = true"), "the way out is named: {list:?}");
    // Any one protection closes it.
    for protection in [
        "allow = [\"10.0.0.0/8\"]",
        "token = { value = \"t0ken-value\" }",
        "signature = { secret = \"signing-secret\" }",
    ] {
        loaded(&format!("{MINIMAL}{}", ripplenet_with_webhook(protection)), &[]);
    }
    let mtls = "[intake.tls]\ncert_file = \"/t.crt\"\nkey_file = \"/t.key\"\nclient_ca_file = \"/ca.crt\"\n";
    loaded(&format!("{MINIMAL}{mtls}{}", ripplenet_with_webhook("")), &[]);
    // TLS without client certificates protects nothing.
    let tls = "[intake.tls]\ncert_file = \"/t.crt\"\nkey_file = \"/t.key\"\n";
    assert_eq!(errors(&format!("{MINIMAL}{tls}{}", ripplenet_with_webhook("")), &[]).len(), 1);
    // The explicit switch, by file or environment, and the warning `config validate` prints.
    let accepted = loaded(&open, &[("PAYBRIDGE_INTAKE__ALLOW_UNAUTHENTICATED", "true")]);
    let warnings = paybridge::config::exposure_warnings(&accepted);
    assert!(warnings.iter().any(|w| w.contains("open to anyone")), "{warnings:?}");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("open.toml");
    let text = format!("{MINIMAL}[intake]\nallow_unauthenticated = true\n{}", ripplenet_with_webhook(""));
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["config", "validate", "--config"])
        .arg(&file)
        .output_within(QUICK);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: source rn: the webhook path is open to anyone"), "{stderr}");
    // A webhook that is not enabled needs nothing.
    loaded(&format!("{MINIMAL}{}", ripplenet_with_webhook("").replace("enabled = true", "enabled = false")), &[]);
}

#[test]
fn a_token_or_signature_over_plain_http_on_a_public_listener_is_a_warning() {
    let token = ripplenet_with_webhook("token = { value = \"t0ken-value\" }");
    let public = loaded(&format!("{MINIMAL}[intake]\nlisten = \"0.0.0.0:8080\"\n{token}"), &[]);
    let warnings = paybridge::config::exposure_warnings(&public);
    assert!(warnings.iter().any(|w| w.contains("travels over plain HTTP")), "{warnings:?}");
    let local = loaded(&format!("{MINIMAL}[intake]\nlisten = \"127.0.0.1:8080\"\n{token}"), &[]);
    assert_eq!(paybridge::config::exposure_warnings(&local), Vec::<String>::new());
    let allow = ripplenet_with_webhook("allow = [\"10.0.0.0/8\"]");
    assert_eq!(paybridge::config::exposure_warnings(&loaded(&format!("{MINIMAL}{allow}"), &[])), Vec::<String>::new());
}

#[test]
fn credentials_go_to_plain_http_only_with_the_explicit_switch() {
    for (source, keys) in [
        (payments_direct("pd"), ["sources[0].base_url", "sources[0].auth.token_url"]),
        (checkout("co"), ["sources[0].base_url", "sources[0].auth.token_url"]),
        (ripplenet_with_webhook("allow = [\"10.0.0.0/8\"]"), ["sources[0].base_url", "sources[0].auth.token_url"]),
    ] {
        let plain = source.replace("https://", "http://");
        let list = errors(&format!("{MINIMAL}{plain}"), &[]);
        for key in keys {
            assert!(
                list.iter()
                    .any(|e| e.starts_with(&format!("{key}: is plain http://")) && e.contains("allow_insecure_http")),
                "{key}: {list:?}"
            );
        }
        let allowed = plain.replacen("base_url", "allow_insecure_http = true\nbase_url", 1);
        let config = loaded(&format!("{MINIMAL}{allowed}"), &[]);
        let warnings = paybridge::config::exposure_warnings(&config);
        assert!(warnings.iter().any(|w| w.contains("credentials are sent over plain HTTP")), "{warnings:?}");
    }
    let registry = "[kafka.schema_registry]\nurl = \"http://registry:8081\"\n";
    loaded(&format!("{MINIMAL}{registry}"), &[]);
    let with_password = format!("{MINIMAL}{registry}username = \"u\"\npassword = \"p\"\n");
    let list = errors(&with_password, &[]);
    assert!(list.iter().any(|e| e.starts_with("kafka.schema_registry.url: is plain http://")), "{list:?}");
    loaded(&format!("{with_password}allow_insecure_http = true\n"), &[]);
    let list = errors(&format!("{MINIMAL}{registry}bearer_token = \"b\"\n"), &[]);
    assert!(list.iter().any(|e| e.starts_with("kafka.schema_registry.url: is plain http://")), "{list:?}");
}

#[test]
fn read_ahead_above_the_pipeline_capacity_is_refused_with_the_reason() {
    let many = checkout("co").replacen("merchant_id", "receivers = 64\nmax_messages = 100\nmerchant_id", 1);
    let list = errors(&format!("{MINIMAL}[pipeline]\ncapacity = 1000\n{many}"), &[]);
    assert!(
        list.iter().any(|e| e.starts_with(
            "sources[0].receivers: receivers × max_messages (6400) is more than pipeline.capacity (1000)"
        )),
        "{list:?}"
    );
    loaded(&format!("{MINIMAL}{many}"), &[]);
    let rn = ripplenet_with_webhook("allow = [\"10.0.0.0/8\"]").replacen("base_url", "page_size = 600\nbase_url", 1);
    let list = errors(&format!("{MINIMAL}[pipeline]\ncapacity = 1000\n{rn}"), &[]);
    assert!(list.iter().any(|e| e.starts_with("sources[0].page_size: 2 pollers × page_size (1200)")), "{list:?}");
}

#[test]
fn the_readme_quickstart_configuration_is_valid() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap_or_default();
    let start = readme.find("<<'TOML'\n").map(|i| i + "<<'TOML'\n".len()).unwrap_or_else(|| panic!("no quickstart"));
    let end = readme[start..].find("\nTOML\n").map(|e| start + e).unwrap_or_else(|| panic!("no end of the quickstart"));
    let env = BTreeMap::from([("RIPPLENET_SECRET".to_owned(), "s3cret".to_owned())]);
    let config = load(&readme[start..end], &env).unwrap_or_else(|e| panic!("the README's quickstart: {e}"));
    assert_eq!(config.sources.len(), 1);
    assert!(config.kafka.create_topics);
}
