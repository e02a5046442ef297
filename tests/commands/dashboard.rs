//! deploy/grafana/paybridge.json and the alerts: every query names a series a freshly started
//! `paybridge run` already has in /metrics for every source (or one only a first
//! occurrence or `paybridge reconcile --push-metrics` gives), and uses the dashboard's variables.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use paybridge::ack::Outcome;
use paybridge::metrics::Metrics;
use serde_json::Value;
use support::Broker;
use support::process::Paybridge;

/// Every sample name /metrics can carry: from each `# TYPE` line, with the suffixes of
/// its type (counters `_total`, histograms `_bucket`, `_sum`, `_count`). A labelled family
/// shows only once it has a series, so every recorder is called once first.
fn exposed_series() -> BTreeSet<String> {
    let m = Metrics::new();
    m.received("s", 1);
    m.batch_resolved("s", &[Outcome::Delivered], std::iter::once(chrono::Utc::now()), Duration::from_millis(3));
    m.acked("s", 1);
    m.upstream_request("s", "poll", "200");
    m.upstream_error("s", "poll", "500", "x");
    m.source_alert("s", true);
    m.enrichment_failed("s");
    m.webhook_ignored("s");
    m.polled("s");
    m.cursor_position("s", chrono::Utc::now());
    m.clock_skew("s", chrono::TimeDelta::zero());
    m.topic_refusing(false);
    m.ack_invalid("s", 1);
    m.ack_failed("s", 1);
    m.dead_lettered();
    m.producer_fatal();
    m.webhook_unknown("s");
    m.processing_failure("s");
    m.webhook_rejected("s", "malformed");
    m.set_pipeline_depth(1);
    let report = paybridge::reconcile::Report {
        source: "s".into(),
        provider: "payments_direct".into(),
        from: chrono::Utc::now(),
        to: chrono::Utc::now(),
        upstream_read: Default::default(),
        kafka_records_read: 0,
        difference: Default::default(),
        repaired: None,
        limits: Vec::new(),
        unknown_counted: true,
        finished_at: chrono::Utc::now(),
        seconds: 0.0,
    };
    let text = m.encode() + &paybridge::reconcile::push::exposition(&report);
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            match kind {
                "counter" => names.extend([format!("{name}_total"), name.to_owned()]),
                "histogram" => names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}"))),
                _ => {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

fn exprs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| exprs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The `paybridge_…` names a PromQL expression uses (without `_bucket`).
fn series_of(query: &str) -> Vec<&str> {
    query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("paybridge_")).collect()
}

#[test]
fn every_alert_names_series_that_exist_and_the_operations_docs_list_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/helm/paybridge/files/alerts.yaml")).unwrap_or_default();
    let docs = std::fs::read_to_string(root.join("docs/src/operations/metrics.md")).unwrap_or_default();
    let exposed = exposed_series();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    let exprs: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("expr: ")).collect();
    assert!(alerts.len() >= 8 && alerts.len() == exprs.len(), "{alerts:?} {exprs:?}");
    for expr in exprs {
        let names = series_of(expr);
        assert!(!names.is_empty(), "an alert without a paybridge series: {expr}");
        for name in names {
            assert!(exposed.contains(name), "{name} (in the alert {expr}) is not in /metrics");
        }
    }
    for alert in alerts {
        assert!(docs.contains(alert), "docs/src/operations/metrics.md does not describe the alert {alert}");
    }
}

/// Series the dashboard queries that only a first occurrence can give a value, so a fresh
/// process does not have them: each with why.
const AFTER_FIRST_OCCURRENCE: [(&str, &str); 9] = [
    (
        "paybridge_last_successful_poll_timestamp_seconds",
        "a time: set by the first good poll (a zero would read as 56 years late)",
    ),
    ("paybridge_cursor_position_timestamp_seconds", "a time: set by the first position written"),
    ("paybridge_upstream_requests_total", "labelled by the status the provider answers"),
    ("paybridge_upstream_errors_total", "labelled by the provider's own error code"),
    ("paybridge_reconcile_upstream_events", "pushed by paybridge reconcile"),
    ("paybridge_reconcile_missing_events", "pushed by paybridge reconcile"),
    ("paybridge_reconcile_unknown_upstream_events", "pushed by paybridge reconcile"),
    ("paybridge_reconcile_repaired_events", "pushed by paybridge reconcile"),
    ("paybridge_reconcile_last_run_timestamp_seconds", "pushed by paybridge reconcile"),
];

fn sources(base: &str, key_path: &std::path::Path) -> String {
    let oauth = |kind: &str, name: &str| {
        format!(
            "\n[[sources]]\nkind = \"{kind}\"\nname = \"{name}\"\naccount = \"acme\"\nbase_url = \"{base}\"\n\
             allow_insecure_http = true\n\n[sources.auth]\ntoken_url = \"{base}/oauth/token\"\n\
             client_id = \"c\"\nclient_secret = \"s\"\naudience = \"urn:x\"\n\n\
             [sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\n"
        )
    };
    format!(
        "{}{}\n[[sources]]\nkind = \"checkout\"\nname = \"co\"\naccount = \"acme\"\nbase_url = \"{base}\"\n\
         allow_insecure_http = true\nmerchant_id = \"m\"\n\n[sources.auth]\ntoken_url = \"{base}/token\"\n\
         client_id = \"c\"\nresource = \"JPMC:URI:RS-TEST\"\nprivate_key_path = \"{}\"\n\
         key_id = \"0123456789ABCDEF0123456789ABCDEF01234567\"\n",
        oauth("ripplenet", "rn"),
        oauth("payments_direct", "pd"),
        key_path.display()
    )
}

/// The sample names (and their `source` labels) of an exposition.
fn samples(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default().to_owned();
            let source = l.split("source=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default();
            (name, source.to_owned())
        })
        .collect()
}

#[test]
fn every_series_the_dashboard_queries_is_in_a_fresh_process_metrics_for_every_source() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/paybridge.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {e}"));
    assert_eq!(dashboard["title"], "paybridge");
    let variables: Vec<&str> =
        dashboard["templating"]["list"].as_array().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(variables, ["datasource", "namespace", "pod", "source"]);
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 20, "{queries:?}");

    let broker = Broker::start();
    let topic = broker.new_topic("dash", 1);
    let dlq = broker.new_topic("dash-dlq", 1);
    let state = broker.new_topic("dash-state", 1);
    let keys = support::keys::rsa_keys();
    let base = format!("http://{}", support::silent_server());
    let config = support::base_config_with_state(&broker, &topic, &dlq, &state) + &sources(&base, &keys.private_file);
    let bridge = Paybridge::start_default_log(&config);
    let (status, _, metrics) = support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/metrics")
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(status, 200);
    let present = samples(&metrics);
    let names: BTreeSet<&str> = present.iter().map(|(n, _)| n.as_str()).collect();

    let mut used = BTreeSet::new();
    for query in &queries {
        let series = series_of(query);
        assert!(!series.is_empty(), "a query without a paybridge metric: {query}");
        let per_source = query.contains("source=~\"$source\"");
        assert!(
            per_source || !query.contains("sum by (source") && !query.contains("max by (source"),
            "a per-source query that ignores the source variable: {query}"
        );
        assert!(
            query.contains("$pod") || query.contains("reconcile"),
            "a query that ignores the pod variable: {query}"
        );
        for name in series {
            used.insert(name.trim_end_matches("_bucket").to_owned());
            if AFTER_FIRST_OCCURRENCE.iter().any(|(n, _)| *n == name) {
                continue;
            }
            assert!(names.contains(name), "{name} (in {query}) is not in a fresh process's /metrics:\n{metrics}");
            if per_source && name != "paybridge_dlq_events_total" {
                for source in ["rn", "pd", "co"] {
                    let webhook_only = name.starts_with("paybridge_webhook_");
                    if webhook_only && source == "co" {
                        continue; // Checkout takes no webhooks
                    }
                    assert!(
                        present.contains(&(name.to_owned(), source.to_owned())),
                        "{name} has no series for source {source} at start:\n{metrics}"
                    );
                }
            }
        }
    }
    // Every refusal reason is there at zero, so the by-reason panel lists them all.
    for reason in paybridge::metrics::WEBHOOK_REFUSAL_REASONS {
        let line = format!("paybridge_webhook_rejected_total{{source=\"rn\",reason=\"{reason}\"}} 0");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    // The series the issues named are all on the dashboard.
    for wanted in [
        "paybridge_events_received_total",
        "paybridge_events_published_total",
        "paybridge_events_acked_total",
        "paybridge_publish_latency_seconds",
        "paybridge_end_to_end_lag_seconds",
        "paybridge_dlq_events_total",
        "paybridge_webhook_rejected_total",
        "paybridge_upstream_failures_total",
        "paybridge_upstream_requests_total",
        "paybridge_pipeline_depth",
        "paybridge_source_alert",
        "paybridge_reconcile_missing_events",
        "paybridge_reconcile_unknown_upstream_events",
    ] {
        assert!(used.contains(wanted), "the dashboard does not show {wanted}: {used:?}");
    }
    // Nothing happened upstream: what is there was registered, not counted.
    assert_eq!(support::metric_sum(bridge.admin_port, "paybridge_events_received_total"), 0);
    drop(keys);
}
