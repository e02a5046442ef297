//! A fatal producer error (librdkafka's own test hook raises one) fails readiness with the
//! reason and ends the run with an error, so `paybridge run` exits non-zero.

use crate::support;

use std::time::Duration;

use paybridge::RunError;
use paybridge::bridge::Bridge;
use support::{Broker, free_port, http_get};
use tokio_util::sync::CancellationToken;

/// A broker and a running bridge without sources; its admin port and stop token.
async fn start() -> (Broker, Bridge, u16, CancellationToken) {
    let broker = Broker::start();
    let topic = broker.new_topic("fatal-events", 1);
    let dlq = broker.new_topic("fatal-dlq", 1);
    let admin = free_port();
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n[intake]\nlisten = \"127.0.0.1:1\"\n[shutdown]\ntimeout = \"2s\"\n",
        broker.bootstrap()
    );
    let config = paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    let bridge =
        Bridge::start(config, &stop).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("stopped"));
    (broker, bridge, admin, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_fails_readiness_and_ends_the_run() {
    let (_broker, bridge, admin, stop) = start().await;
    let ready = || http_get(([127, 0, 0, 1], admin).into(), "/readyz").map(|r| (r.0, r.2)).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ready().0 != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready: {:?}", ready());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    bridge.sink().raise_fatal_error_for_tests("test: producer fenced");
    let run = tokio::spawn(async move { bridge.run_until(&stop).await });
    let outcome = tokio::time::timeout(Duration::from_secs(10), run).await;
    let Ok(Ok(result)) = outcome else { panic!("the run did not end after a fatal error") };
    match result {
        Err(RunError::ProducerFatal(reason)) => assert!(reason.contains("fenced"), "{reason}"),
        other => panic!("expected a fatal producer error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_the_fatal_reason_while_shutting_down() {
    let (_broker, bridge, admin, _stop) = start().await;
    bridge.sink().raise_fatal_error_for_tests("test: producer fenced");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            http_get(([127, 0, 0, 1], admin).into(), "/readyz").map(|r| (r.0, r.2)).unwrap_or_default();
        if status == 503 && body.contains("fenced") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "readiness never failed with the reason: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = http_get(([127, 0, 0, 1], admin).into(), "/metrics").map(|r| r.2).unwrap_or_default();
    assert!(metrics.contains("paybridge_producer_fatal 1"), "{metrics}");
    bridge.shutdown().await;
}
