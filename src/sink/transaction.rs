//! The transactional writer for cursor sources: events and the cursor record in one Kafka
//! transaction, with zombie fencing by `transactional.id` (one per source).
//!
//! Brokers without transactions (tansu 0.6.0 among them) fail the start-up probe, and
//! paybridge refuses to start with `kafka.exactly_once = true` on them.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::time::Instant;

use super::kafka::{EventRecord, await_delivery, producer_config, send_waiting};
use crate::ack::{BatchOutcome, EventOutcome, Outcome};
use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error(
        "kafka.exactly_once = true, but the broker does not support transactions ({0}); \
         use a broker with transactions (Apache Kafka, Redpanda) or set kafka.exactly_once = false"
    )]
    Unsupported(String),
    #[error("cannot create the transactional producer: {0}")]
    Producer(KafkaError),
}

/// A transactional producer for one cursor source.
pub struct TransactionalWriter {
    producer: FutureProducer,
    topic: String,
    state_topic: String,
    timeout: Duration,
}

/// The `transactional.id` of a source's writer: a restarted instance fences the old one.
pub fn transactional_id(source: &str) -> String {
    format!("paybridge-{source}")
}

impl TransactionalWriter {
    /// Creates the producer, initializes transactions and commits a probe transaction
    /// (one record to the state topic), so a broker without transactions fails here, at
    /// start, rather than at the first real commit.
    pub async fn start(kafka: &KafkaConfig, source: &str) -> Result<Self, TransactionError> {
        let mut config = producer_config(kafka);
        config.set("transactional.id", transactional_id(source));
        let producer: FutureProducer = config.create().map_err(TransactionError::Producer)?;
        let timeout = kafka.metadata_timeout.get();
        let writer = Self { producer, topic: kafka.topic.clone(), state_topic: kafka.state_topic.clone(), timeout };
        writer.probe(source).await.map_err(TransactionError::Unsupported)?;
        Ok(writer)
    }

    async fn probe(&self, source: &str) -> Result<(), String> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.init_transactions(timeout)).await.map_err(|e| e.to_string())?;
        self.producer.begin_transaction().map_err(|e| e.to_string())?;
        let probe = EventRecord {
            key: format!("{source}.probe"),
            value: b"{}".to_vec(),
            headers: vec![("content-type", "application/json".to_owned())],
        };
        let deadline = Instant::now() + timeout;
        let sent = send_waiting(&self.producer, &self.state_topic, &probe, probe.owned_headers(), deadline).await;
        if let Err(e) = sent {
            self.abort().await;
            return Err(e.to_string());
        }
        let producer = self.producer.clone();
        let committed = blocking(move || producer.commit_transaction(timeout)).await.map_err(|e| e.to_string());
        if committed.is_err() {
            self.abort().await;
        }
        committed
    }

    async fn abort(&self) {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let _ = blocking(move || producer.abort_transaction(timeout)).await;
    }

    /// Sends `events` and the cursor `record` in one transaction. Every event is Delivered
    /// when the transaction committed, otherwise every event is Retry (and the transaction
    /// aborted, so read_committed consumers never see them).
    pub async fn commit(&self, events: &[CanonicalEvent], cursor: &EventRecord) -> BatchOutcome {
        let ids: Vec<_> = events.iter().map(|e| e.id).collect();
        match self.try_commit(events, cursor).await {
            Ok(()) => BatchOutcome {
                events: ids.into_iter().map(|id| EventOutcome { id, outcome: Outcome::Delivered }).collect(),
            },
            Err(e) => {
                self.abort().await;
                BatchOutcome::all_retry(&ids, &format!("transaction aborted: {e}"))
            }
        }
    }

    async fn try_commit(&self, events: &[CanonicalEvent], cursor: &EventRecord) -> Result<(), String> {
        self.producer.begin_transaction().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + self.timeout;
        let mut deliveries = Vec::with_capacity(events.len() + 1);
        for event in events {
            let record = EventRecord::from_event(event).map_err(|e| e.to_string())?;
            let d = send_waiting(&self.producer, &self.topic, &record, record.owned_headers(), deadline).await;
            deliveries.push(d.map_err(|e| e.to_string())?);
        }
        let d = send_waiting(&self.producer, &self.state_topic, cursor, cursor.owned_headers(), deadline).await;
        deliveries.push(d.map_err(|e| e.to_string())?);
        for delivery in deliveries {
            await_delivery(delivery, deadline).await.map_err(|e| e.to_string())?;
        }
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.commit_transaction(timeout)).await.map_err(|e| e.to_string())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(KafkaError::Canceled))
}
