//! The admin endpoints against a real pipeline and broker: /healthz, /readyz, and
//! /metrics parsed as Prometheus text with every documented series.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use paybridge::admin::{AdminState, serve};
use paybridge::health::Health;
use paybridge::metrics::Metrics;
use paybridge::pipeline::{Pipeline, PipelineSettings};
use paybridge::sink::kafka::KafkaSink;
use support::{Broker, http_get, kafka_config_with, ripplenet_event};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &'static str) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || http_get(addr, path))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let broker = Broker::start();
    let topic = broker.new_topic("adm-events", 1);
    let dlq = broker.new_topic("adm-dlq", 1);
    let sink = KafkaSink::new(&kafka_config_with(&broker, &topic, &dlq, "")).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::new());
    let pipeline = Pipeline::start(
        sink,
        PipelineSettings { capacity: 100, delivery_deadline: Duration::from_secs(30) },
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    let state = AdminState { metrics: metrics.clone(), health: health.clone(), submitter: pipeline.submitter() };
    let server = tokio::spawn(serve(listener, state, stop.clone()));

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, _, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "not ready before the broker was seen: {body}");
    assert!(body.contains("metadata"), "{body}");
    health.broker_reachable();
    health.register_source("rn-main", Duration::from_secs(60));
    assert_eq!(get(addr, "/readyz").await.0, 200);

    // Traffic: one delivered batch, one rejected (too large) event, and the hooks sources call.
    let events = vec![ripplenet_event(1, "p1", 10), ripplenet_event(2, "p2", 2_000_000), ripplenet_event(3, "p3", 10)];
    let outcome =
        pipeline.submitter().submit("rn-main", events).await.unwrap_or_else(|e| panic!("{e}")).outcome().await;
    assert_eq!(outcome.count(|o| o.is_settled()), 3);
    metrics.acked("rn-main", 3);
    metrics.upstream_request("rn-main", "GET /v4/orchestration/payment/notification", "200");
    metrics.polled("rn-main");

    let (status, content_type, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{text}"));
    let names: HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for series in [
        "paybridge_events_received_total",
        "paybridge_events_published_total",
        "paybridge_events_acked_total",
        "paybridge_events_rejected_total",
        "paybridge_events_retried_total",
        "paybridge_dlq_events_total",
        "paybridge_publish_latency_seconds",
        "paybridge_upstream_requests_total",
        "paybridge_pipeline_depth",
        "paybridge_last_successful_poll_timestamp_seconds",
    ] {
        assert!(names.contains(series), "missing {series} in:\n{text}");
    }
    let value = |metric: &str| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric && s.labels.get("source").is_none_or(|l| l == "rn-main"))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(value("paybridge_events_received_total"), 3.0);
    assert_eq!(value("paybridge_events_published_total"), 2.0);
    assert_eq!(value("paybridge_events_rejected_total"), 1.0);
    assert_eq!(value("paybridge_dlq_events_total"), 1.0);
    assert_eq!(value("paybridge_events_acked_total"), 3.0);
    assert_eq!(value("paybridge_pipeline_depth"), 0.0);
    assert!(value("paybridge_last_successful_poll_timestamp_seconds") > 1.7e9);
    let latency = scrape.samples.iter().find(|s| s.metric == "paybridge_publish_latency_seconds");
    match latency.map(|s| &s.value) {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            assert!(buckets.len() > 5, "latency histogram has buckets");
            assert!(buckets.iter().any(|b| b.count >= 1.0), "the batch was observed");
        }
        other => panic!("publish latency is not a histogram: {other:?}"),
    }
    let upstream = scrape.samples.iter().find(|s| s.metric == "paybridge_upstream_requests_total");
    assert_eq!(upstream.and_then(|s| s.labels.get("status")), Some("200"));

    stop.cancel();
    let _ = server.await;
    pipeline.shutdown(Duration::from_secs(5)).await;
    drop(broker);
}
