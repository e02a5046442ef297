//! The ceiling: what a raw librdkafka producer (idempotent, acks=all) achieves on the same
//! broker with records of the same size and headers as paybridge's events.

use std::time::{Duration, Instant};

use paybridge::sink::kafka::EventRecord;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

use crate::support::Broker;

/// Raw producer runs for one record size; the best run is the ceiling.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ceiling {
    pub record_bytes: usize,
    /// records/s of each run, in order.
    pub runs: Vec<f64>,
}

impl Ceiling {
    pub fn new(sample: &EventRecord) -> Self {
        Ceiling { record_bytes: sample.value.len(), runs: Vec::new() }
    }

    pub fn best(&self) -> f64 {
        self.runs.iter().copied().fold(0.0, f64::max)
    }

    /// Two more runs, with librdkafka's default in-flight limit (5) and with 2: rounds of `n`
    /// records until `at_least` has passed, so a fast broker is timed over seconds, not
    /// milliseconds.
    pub async fn measure(&mut self, broker: &Broker, sample: &EventRecord, n: usize, at_least: Duration) {
        for in_flight in [5, 2] {
            let topic = broker.new_topic("bench-raw", 3);
            self.runs.push(raw_producer(broker, &topic, sample, (n, at_least), in_flight).await);
        }
    }
}

/// A raw producer configured as paybridge's: idempotent, acks=all, lz4, linger 5 ms, with
/// `in_flight` requests per connection.
pub fn raw(broker: &Broker, in_flight: u32) -> FutureProducer {
    broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("max.in.flight.requests.per.connection", in_flight.to_string())
        .create()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Rounds of `n` records of `sample`'s size through a raw idempotent acks=all producer (lz4,
/// linger 5 ms, as paybridge), each round all in flight, then every delivery awaited, until
/// `at_least` has passed. Records/s.
async fn raw_producer(
    broker: &Broker,
    topic: &str,
    sample: &EventRecord,
    (n, at_least): (usize, Duration),
    in_flight: u32,
) -> f64 {
    let producer = raw(broker, in_flight);
    // Warm up: connect, learn the partition leaders and the producer id, outside the timing.
    let warm = FutureRecord::to(topic).key(&sample.key).payload(&sample.value).headers(sample.owned_headers());
    let _ = producer.send(warm, Duration::from_secs(30)).await;
    let started = Instant::now();
    let mut sent = 0;
    while sent == 0 || started.elapsed() < at_least {
        let mut deliveries = Vec::with_capacity(n);
        for i in sent..sent + n {
            let key = format!("{}-{i}", sample.key);
            loop {
                let record = FutureRecord::to(topic).key(&key).payload(&sample.value).headers(sample.owned_headers());
                match producer.send_result(record) {
                    Ok(d) => break deliveries.push(d),
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }
        for d in deliveries {
            let _ = d.await;
        }
        sent += n;
    }
    sent as f64 / started.elapsed().as_secs_f64()
}
