//! `--push-metrics`: the last reconcile's result as Prometheus metrics, pushed to a
//! Pushgateway (a CronJob lives too briefly to be scraped), grouped by job and source so each
//! source's last result replaces its previous one.

use std::time::Duration;

use super::Report;

/// The metrics of `report` in the Prometheus text format.
pub fn exposition(report: &Report) -> String {
    let d = &report.difference;
    let label = report.source.replace('\\', "\\\\").replace('"', "\\\"");
    let repaired = report.repaired.as_ref().map_or(0, |r| r.published);
    let rows: [(&str, &str, u64); 5] = [
        (
            "paybridge_reconcile_upstream_events",
            "Events the provider's records give for the last reconciled period.",
            d.upstream,
        ),
        ("paybridge_reconcile_accounted_events", "Of those, found in Kafka (events topic or DLQ).", d.accounted),
        ("paybridge_reconcile_missing_events", "Of those, missing from Kafka.", d.missing),
        (
            "paybridge_reconcile_unknown_upstream_events",
            "Events of the period in Kafka the provider's records do not give.",
            d.unknown_upstream,
        ),
        ("paybridge_reconcile_repaired_events", "Missing events published by --repair.", repaired),
    ];
    let mut out = String::new();
    for (name, help, value) in rows {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{source=\"{label}\"}} {value}\n"));
    }
    let times = [
        ("paybridge_reconcile_last_run_timestamp_seconds", "When the last reconcile finished.", report.finished_at),
        ("paybridge_reconcile_period_end_timestamp_seconds", "The end of the last reconciled period.", report.to),
    ];
    for (name, help, at) in times {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{source=\"{label}\"}} {}\n",
            at.timestamp()
        ));
    }
    out
}

/// PUTs the metrics to `gateway` (`http(s)://host:port`) under
/// `/metrics/job/paybridge_reconcile/source/<source>`. The error names the gateway's host
/// only (its URL may hold credentials).
pub async fn push(gateway: &str, report: &Report) -> Result<(), String> {
    let url = reqwest::Url::parse(gateway).map_err(|_| "--push-metrics is not a URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("--push-metrics must be an http or https URL".into());
    }
    let host = url.host_str().unwrap_or("-").to_owned();
    let mut target = url;
    target.path_segments_mut().map_err(|_| "--push-metrics cannot take a path".to_owned())?.pop_if_empty().extend([
        "metrics",
        "job",
        "paybridge_reconcile",
        "source",
        &report.source,
    ]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let answer = client
        .put(target)
        .header("content-type", "text/plain; version=0.0.4")
        .body(exposition(report))
        .send()
        .await
        .map_err(|e| format!("cannot push the metrics to {host}: {}", e.without_url()))?;
    if !answer.status().is_success() {
        return Err(format!("the Pushgateway at {host} answered {}", answer.status()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::spill::Difference;

    #[test]
    fn the_exposition_has_one_gauge_per_count_labelled_by_source() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let report = Report {
            source: "pd \"eu\"".into(),
            provider: "payments_direct".into(),
            from: at,
            to: at,
            upstream_read: Default::default(),
            kafka_records_read: 0,
            difference: Difference { upstream: 24, accounted: 21, missing: 3, ..Difference::default() },
            repaired: None,
            limits: Vec::new(),
            unknown_counted: true,
            finished_at: at,
            seconds: 1.0,
        };
        let text = exposition(&report);
        assert!(text.contains("paybridge_reconcile_missing_events{source=\"pd \\\"eu\\\"\"} 3\n"), "{text}");
        assert!(text.contains("paybridge_reconcile_accounted_events{source=\"pd \\\"eu\\\"\"} 21\n"), "{text}");
        assert!(text.contains("paybridge_reconcile_last_run_timestamp_seconds{source=\"pd \\\"eu\\\"\"} 1800000000\n"));
        assert_eq!(text.matches("# TYPE").count(), 7);
    }
}
