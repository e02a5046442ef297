//! Shutdown of the running bridge (the code `paybridge run` calls on SIGTERM) with batches
//! in flight: delivered ones stay Delivered, the rest resolve Retry, within the deadline.

use crate::support;

use std::time::{Duration, Instant};

use paybridge::ack::Outcome;
use paybridge::bridge::Bridge;
use support::{Broker, ripplenet_event};

/// A running bridge on `broker` (topics named after `prefix`) with `shutdown_timeout` and a
/// 60 s delivery timeout (nothing resolves on its own while a test waits).
async fn start(broker: &Broker, prefix: &str, shutdown_timeout: &str) -> Bridge {
    let topic = broker.new_topic(&format!("{prefix}-events"), 1);
    let dlq = broker.new_topic(&format!("{prefix}-dlq"), 1);
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\ndelivery_timeout = \"60s\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[intake]\nlisten = \"127.0.0.1:1\"\n[shutdown]\ntimeout = \"{shutdown_timeout}\"\n",
        broker.bootstrap()
    );
    let config = paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let stop = tokio_util::sync::CancellationToken::new();
    Bridge::start(config, &stop).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("stopped"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_batches_in_flight() {
    let mut broker = Broker::start_own();
    let bridge = start(&broker, "br", "2s").await;
    let submitter = bridge.submitter();

    let delivered: Vec<_> = (0..50).map(|n| ripplenet_event(40_000 + n, "pay-br", 10)).collect();
    let delivered = submitter.submit("src", delivered).await.unwrap_or_else(|e| panic!("{e}"));
    let first = delivered.outcome().await;
    assert!(first.is_delivered(), "{:?}", first.overall());
    broker.stop();
    let in_flight: Vec<_> = (0..50).map(|n| ripplenet_event(41_000 + n, "pay-br", 10)).collect();
    let in_flight = submitter.submit("src", in_flight).await.unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    bridge.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?} with a 2 s deadline", started.elapsed());
    let second = in_flight.outcome_within(Duration::from_secs(1)).await;
    assert_eq!(second.count(|o| matches!(o, Outcome::Retry(_))), 50, "{:?}", second.overall());
}

/// A broker that stops at the same moment as paybridge (a demo's Ctrl-C reaching both, a
/// node going down): shutdown stops waiting for confirmations once the brokers leave three
/// metadata requests in a row unanswered, instead of waiting out a 30 s shutdown.timeout;
/// what was in flight resolves Retry (not acknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_out_its_timeout_for_a_broker_that_is_gone() {
    let mut broker = Broker::start_own();
    let bridge = start(&broker, "gone", "30s").await;
    let submitter = bridge.submitter();
    let first = submitter.submit("src", vec![ripplenet_event(42_000, "pay-gone", 10)]).await;
    let first = first.unwrap_or_else(|e| panic!("{e}")).outcome().await;
    assert!(first.is_delivered(), "{:?}", first.overall());

    broker.stop();
    let in_flight: Vec<_> = (0..20).map(|n| ripplenet_event(42_100 + n, "pay-gone", 10)).collect();
    let in_flight = submitter.submit("src", in_flight).await.unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    bridge.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}: waited for a broker that is gone");
    let outcome = in_flight.outcome_within(Duration::from_secs(1)).await;
    assert_eq!(outcome.count(|o| matches!(o, Outcome::Retry(_))), 20, "{:?}", outcome.overall());
}

/// With the broker up, shutdown still waits for what is in flight (the probes do not cut a
/// healthy shutdown short): every event submitted before it is confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_the_broker_up_confirms_what_is_in_flight() {
    let broker = Broker::start();
    let bridge = start(&broker, "up", "30s").await;
    let events: Vec<_> = (0..500).map(|n| ripplenet_event(43_000 + n, "pay-up", 200)).collect();
    let in_flight = bridge.submitter().submit("src", events).await.unwrap_or_else(|e| panic!("{e}"));
    bridge.shutdown().await;
    let outcome = in_flight.outcome_within(Duration::from_secs(1)).await;
    assert!(outcome.is_delivered(), "{:?}", outcome.overall());
}
