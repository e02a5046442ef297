//! The Kafka producer: configuration (acks=all and idempotence always on) and records.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::event::{CLOUDEVENTS_CONTENT_TYPE, CanonicalEvent};

/// Producer properties paybridge sets before the user's `kafka.properties`
/// (which may override them, except the forced ones).
const DEFAULT_PROPERTIES: &[(&str, &str)] = &[
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("batch.num.messages", "10000"),
    ("client.id", "paybridge"),
];

/// The librdkafka configuration for the producer: defaults, then the user's properties,
/// then the forced delivery guarantees (acks=all, enable.idempotence=true).
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULT_PROPERTIES {
        config.set(*key, *value);
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set(
            "message.timeout.ms",
            kafka.delivery_timeout.get().as_millis().to_string(),
        )
        .set("acks", "all")
        .set("enable.idempotence", "true");
    config
}

/// A record ready to send: structured-mode CloudEvent value, payment key, ce_ headers.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl EventRecord {
    pub fn from_event(event: &CanonicalEvent) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_vec(event)?;
        let headers = vec![
            ("content-type", CLOUDEVENTS_CONTENT_TYPE.to_owned()),
            ("ce_specversion", "1.0".to_owned()),
            ("ce_id", event.id.to_string()),
            ("ce_type", event.event_type.as_str().to_owned()),
            ("ce_source", event.source.clone()),
            ("ce_subject", event.subject.clone()),
        ];
        Ok(Self {
            key: event.key(),
            value,
            headers,
        })
    }

    pub fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            },
        )
    }
}

/// Where a record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub partition: i32,
    pub offset: i64,
}

/// A failed send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot encode the event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("broker did not confirm the record: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the producer dropped the delivery report")]
    Dropped,
}

/// The Kafka side of the bridge.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
}

impl KafkaSink {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let producer: FutureProducer = producer_config(kafka).create()?;
        Ok(Self {
            producer,
            topic: kafka.topic.clone(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends every event and waits for all delivery reports together (many records in
    /// flight). The result for each event is in input order.
    pub async fn publish_all(&self, events: &[CanonicalEvent]) -> Vec<Result<Written, SendError>> {
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            pending.push(self.enqueue(event).await);
        }
        let mut results = Vec::with_capacity(pending.len());
        for enqueued in pending {
            results.push(match enqueued {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(d)) => Ok(Written {
                        partition: d.partition,
                        offset: d.offset,
                    }),
                    Ok(Err((e, _))) => Err(SendError::Kafka(e)),
                    Err(_) => Err(SendError::Dropped),
                },
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Puts one record in the producer queue, waiting while the queue is full.
    async fn enqueue(
        &self,
        event: &CanonicalEvent,
    ) -> Result<rdkafka::producer::DeliveryFuture, SendError> {
        let record = EventRecord::from_event(event)?;
        let headers = record.owned_headers();
        loop {
            let future_record = FutureRecord::to(&self.topic)
                .key(record.key.as_bytes())
                .payload(record.value.as_slice())
                .headers(headers.clone());
            match self.producer.send_result(future_record) {
                Ok(delivery) => return Ok(delivery),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(SendError::Kafka(e)),
            }
        }
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
