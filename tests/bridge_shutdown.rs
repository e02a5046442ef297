//! Shutdown of the running bridge (the code `paybridge run` calls on SIGTERM) with batches
//! in flight: delivered ones stay Delivered, the rest resolve Retry, within the deadline.

mod support;

use std::time::{Duration, Instant};

use paybridge::ack::Outcome;
use paybridge::bridge::Bridge;
use support::{Broker, ripplenet_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_batches_in_flight() {
    let mut broker = Broker::start_own();
    let topic = broker.new_topic("br-events", 1);
    let dlq = broker.new_topic("br-dlq", 1);
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\ndelivery_timeout = \"60s\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[intake]\nlisten = \"127.0.0.1:1\"\n[shutdown]\ntimeout = \"2s\"\n",
        broker.bootstrap()
    );
    let config = paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let stop = tokio_util::sync::CancellationToken::new();
    let bridge =
        Bridge::start(config, &stop).await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("stopped"));
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
