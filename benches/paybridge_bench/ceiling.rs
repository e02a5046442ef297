//! The ceiling: what a raw librdkafka producer (idempotent, acks=all) achieves on the same
//! broker with records of the same size and headers as paybridge's events.

use std::time::{Duration, Instant};

use paybridge::sink::kafka::EventRecord;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::support::Broker;

/// Raw producer runs for one record size; the best run is the ceiling.
#[derive(Clone, Debug, Default, Serialize)]
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

    /// One more run of `n` records (librdkafka's in-flight limit `in_flight`).
    pub async fn measure(&mut self, broker: &Broker, sample: &EventRecord, n: usize, in_flight: u32) {
        let topic = broker.new_topic("bench-raw", 3);
        self.runs.push(raw_producer(broker, &topic, sample, n, in_flight).await);
    }
}

/// N records of `sample`'s size through a raw idempotent acks=all producer (lz4, linger
/// 5 ms, as paybridge), all in flight, then every delivery awaited. Records/s.
async fn raw_producer(broker: &Broker, topic: &str, sample: &EventRecord, n: usize, in_flight: u32) -> f64 {
    let producer: FutureProducer = broker
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("max.in.flight.requests.per.connection", in_flight.to_string())
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    // Warm up: connect, learn the partition leaders and the producer id, outside the timing.
    let warm = FutureRecord::to(topic).key(&sample.key).payload(&sample.value).headers(sample.owned_headers());
    let _ = producer.send(warm, Duration::from_secs(30)).await;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
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
    n as f64 / started.elapsed().as_secs_f64()
}
