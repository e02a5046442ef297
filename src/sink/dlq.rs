//! The dead-letter topic: events the broker permanently rejects, intact, with the reason
//! in headers.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::time::Instant;

use super::fatal::FatalWatch;
use super::kafka::{EventRecord, SendError, await_delivery, headers_of, producer_config, send_waiting};
use crate::config::KafkaConfig;

/// Header with the human-readable reason the main topic refused the record.
pub const REASON_HEADER: &str = "paybridge_dlq_reason";
/// Header with the Kafka error code name (e.g. `MessageSizeTooLarge`).
pub const ERROR_CODE_HEADER: &str = "paybridge_dlq_error_code";
/// Header with the topic the record was meant for.
pub const ORIGINAL_TOPIC_HEADER: &str = "paybridge_dlq_original_topic";

/// The largest record librdkafka accepts locally; the DLQ producer allows it so that a
/// record too large for the main topic's limit can still reach the DLQ when the broker
/// takes it (compressed with zstd).
const DLQ_MAX_MESSAGE_BYTES: &str = "1000000000";

#[derive(Clone)]
pub struct DlqWriter {
    producer: FutureProducer<FatalWatch>,
    topic: String,
    _credentials: std::sync::Arc<super::credentials::Registration>,
}

impl DlqWriter {
    pub fn new(kafka: &KafkaConfig, fatal: FatalWatch) -> Result<Self, KafkaError> {
        let mut config = producer_config(kafka);
        config.set("message.max.bytes", DLQ_MAX_MESSAGE_BYTES).set("compression.type", "zstd");
        let producer: FutureProducer<FatalWatch> = config.create_with_context(fatal)?;
        Ok(Self {
            _credentials: super::credentials::register(producer.clone()),
            producer,
            topic: kafka.dlq_topic.clone(),
        })
    }

    /// Writes `record` unchanged, its headers plus the DLQ headers, and waits for the
    /// broker's confirmation.
    pub async fn write(
        &self,
        record: &EventRecord,
        original_topic: &str,
        error_code: &str,
        reason: &str,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let extra = [(REASON_HEADER, reason), (ERROR_CODE_HEADER, error_code), (ORIGINAL_TOPIC_HEADER, original_topic)];
        let headers = headers_of(record.headers.iter().map(|(k, v)| (*k, v.as_str())).chain(extra));
        let delivery = send_waiting(&self.producer, &self.topic, None, record, headers, deadline).await?;
        await_delivery(delivery, deadline).await.map(|_| ())
    }

    pub fn fatal_error(&self) -> Option<(rdkafka::error::RDKafkaErrorCode, String)> {
        self.producer.client().fatal_error()
    }

    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
