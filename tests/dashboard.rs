//! deploy/grafana/paybridge.json: valid JSON whose every query names a series /metrics has,
//! or one `paybridge reconcile --push-metrics` pushes.

use std::collections::BTreeSet;
use std::time::Duration;

use paybridge::ack::Outcome;
use paybridge::metrics::Metrics;
use serde_json::Value;

/// Every sample name /metrics can carry: from each `# TYPE` line, with the suffixes of
/// its type (counters `_total`, histograms `_bucket`, `_sum`, `_count`). A labelled family
/// shows only once it has a series, so every recorder is called once first.
fn exposed_series() -> BTreeSet<String> {
    let m = Metrics::new();
    m.received("s", 1);
    m.batch_resolved("s", &[Outcome::Delivered], Duration::from_millis(3));
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
fn every_alert_names_series_that_exist_and_the_readme_lists_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("deploy/helm/paybridge/files/alerts.yaml")).unwrap_or_default();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
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
        assert!(readme.contains(alert), "README does not describe the alert {alert}");
    }
}

#[test]
fn every_metric_the_dashboard_queries_exists_in_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/paybridge.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON: {e}"));
    assert_eq!(dashboard["title"], "paybridge");
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "{queries:?}");
    let exposed = exposed_series();
    assert!(exposed.contains("paybridge_events_published_total"), "{exposed:?}");
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = series_of(query);
        assert!(!names.is_empty(), "a query without a paybridge metric: {query}");
        for name in names {
            assert!(exposed.contains(name), "{name} (in {query}) is not in /metrics");
            used.insert(name.trim_end_matches("_bucket").to_owned());
        }
    }
    // The series the issue names are all on the dashboard.
    for wanted in [
        "paybridge_events_published_total",
        "paybridge_publish_latency_seconds",
        "paybridge_events_acked_total",
        "paybridge_dlq_events_total",
        "paybridge_upstream_requests_total",
        "paybridge_pipeline_depth",
        "paybridge_source_alert",
        "paybridge_reconcile_missing_events",
        "paybridge_reconcile_unknown_upstream_events",
    ] {
        assert!(used.contains(wanted), "the dashboard does not show {wanted}: {used:?}");
    }
}
