//! The Kafka producer: configuration (acks=all and idempotence always on), records, and
//! publishing a batch with many records in flight and every error classified.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use tokio::time::Instant;

use super::errors::{ErrorClass, classify, error_code_name};
use super::fatal::FatalWatch;
use super::refusals::Refusals;
use crate::ack::Outcome;
use crate::config::KafkaConfig;
use crate::event::{CLOUDEVENTS_CONTENT_TYPE, CanonicalEvent};
use crate::sink::wire::ValueFormat;

/// Producer properties paybridge sets before the user's `kafka.properties`
/// (which may override them, except the forced ones).
///
/// `max.in.flight.requests.per.connection` stays librdkafka's (5). paybridge set 2 while it
/// was measured on tansu, where librdkafka's broker thread busy-polled with every slot taken
/// by a broker slower than the producer; on Apache Kafka 2 and 5 measured the same
/// throughput and CPU (benches/REPORT.md, 2026-12-04), and 5 leaves room for a link with a
/// longer round trip.
const DEFAULT_PROPERTIES: &[(&str, &str)] = &[
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("batch.num.messages", "10000"),
    ("client.id", crate::config::DEFAULT_CLIENT_ID),
];

/// How long the producer waits for a record to enter a full local queue before it checks
/// the deadline again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// The librdkafka configuration for the producer: defaults, then the user's properties,
/// then the settings of their own keys and the forced delivery guarantees (acks=all,
/// enable.idempotence=true).
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in DEFAULT_PROPERTIES {
        config.set(*key, *value);
    }
    for (key, value) in &kafka.properties {
        config.set(key, value);
    }
    if let Some(file) = &kafka.sasl_password_file {
        // Read when the client is made; a running client gets a rotated one from the watcher.
        match super::credentials::password_from_file(file) {
            Ok(password) => {
                config.set("sasl.password", password);
            }
            Err(reason) => tracing::warn!(%reason, "the Kafka client has no SASL password"),
        }
    }
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("message.timeout.ms", kafka.delivery_timeout.get().as_millis().to_string())
        .set("compression.type", kafka.compression.as_str())
        .set("acks", "all")
        .set("enable.idempotence", "true");
    config
}

/// A librdkafka consumer configuration for reading paybridge's topics: the connection and
/// security settings of the producer's (`kafka.properties`), without the producer-only ones,
/// in consumer group `group` with no automatic commits.
pub fn consumer_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = producer_config(kafka);
    for key in
        ["acks", "enable.idempotence", "message.timeout.ms", "compression.type", "linger.ms", "batch.num.messages"]
    {
        config.remove(key);
    }
    for (key, _) in DEFAULT_PROPERTIES {
        config.remove(key);
    }
    if let Some(client_id) = kafka.properties.get("client.id") {
        config.set("client.id", client_id);
    }
    config.set("group.id", group).set("enable.auto.commit", "false").set("auto.offset.reset", "earliest");
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
    /// The record of `event`, its value written in `format`.
    pub fn from_event(event: &CanonicalEvent, format: ValueFormat) -> Result<Self, serde_json::Error> {
        let value = format.encode(event)?;
        let headers = vec![
            ("content-type", CLOUDEVENTS_CONTENT_TYPE.to_owned()),
            ("ce_specversion", "1.0".to_owned()),
            ("ce_id", event.id.to_string()),
            ("ce_type", event.event_type.as_str().to_owned()),
            ("ce_source", event.source.clone()),
            ("ce_subject", event.subject.clone()),
        ];
        Ok(Self { key: event.key(), value, headers })
    }

    pub fn owned_headers(&self) -> OwnedHeaders {
        headers_of(self.headers.iter().map(|(k, v)| (*k, v.as_str())))
    }

    /// An upper bound of the bytes this record takes alone in a record batch, uncompressed:
    /// key, value and headers with Kafka's per-record and per-batch framing.
    pub fn batch_bytes(&self) -> usize {
        /// A record batch's header (61 bytes) and a record's varints and attributes.
        const FRAMING: usize = 61 + 32;
        /// Per header: its varint lengths.
        const PER_HEADER: usize = 10;
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len() + PER_HEADER).sum();
        FRAMING.saturating_add(self.key.len()).saturating_add(self.value.len()).saturating_add(headers)
    }
}

pub(crate) fn headers_of<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> OwnedHeaders {
    pairs.fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value.as_bytes()) }))
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
    #[error("the deadline passed before the broker confirmed the record")]
    Deadline,
}

impl SendError {
    fn class(&self) -> ErrorClass {
        match self {
            SendError::Kafka(e) => classify(e),
            _ => ErrorClass::Transient,
        }
    }
}

/// The Kafka side of the bridge: the event producer and the DLQ producer.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer<FatalWatch>,
    fatal: FatalWatch,
    dlq: super::dlq::DlqWriter,
    topic: String,
    delivery_timeout: Duration,
    value_format: ValueFormat,
    refusals: Refusals,
    /// The producer takes a rotated SASL password ([`super::credentials`]).
    _credentials: Arc<super::credentials::Registration>,
}

impl KafkaSink {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let fatal = FatalWatch::default();
        let producer: FutureProducer<FatalWatch> = producer_config(kafka).create_with_context(fatal.clone())?;
        Ok(Self {
            _credentials: super::credentials::register(producer.clone()),
            producer,
            dlq: super::dlq::DlqWriter::new(kafka, fatal.clone())?,
            fatal,
            topic: kafka.topic.clone(),
            delivery_timeout: kafka.delivery_timeout.get(),
            value_format: ValueFormat::Json,
            refusals: Refusals::new(kafka.dlq_breaker_max, kafka.dlq_breaker_window),
        })
    }

    /// Event values written in `format` (plain JSON unless the schema registry's wire
    /// format is on).
    pub fn with_value_format(mut self, format: ValueFormat) -> Self {
        self.value_format = format;
        self
    }

    pub fn value_format(&self) -> ValueFormat {
        self.value_format
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Latches the producers' first fatal error (see [`FatalWatch`]).
    pub fn fatal_watch(&self) -> &FatalWatch {
        &self.fatal
    }

    /// A fatal error of the event or the DLQ producer, as librdkafka holds it.
    pub fn fatal_error(&self) -> Option<String> {
        let fatal = self.producer.client().fatal_error().or_else(|| self.dlq.fatal_error())?;
        Some(format!("fatal Kafka producer error ({:?}): {}", fatal.0, fatal.1))
    }

    /// Watches for fatal producer errors until one happens; then latches it in the
    /// [`FatalWatch`] and returns its reason. Checks after every librdkafka error event, and
    /// every `every` in case one was missed.
    pub async fn watch_fatal(&self, every: Duration) -> String {
        loop {
            if let Some(reason) = self.fatal_error() {
                tracing::error!(%reason, "nothing more can be published");
                self.fatal.latch(reason.clone());
                return reason;
            }
            let _ = tokio::time::timeout(every, self.fatal.poked()).await;
        }
    }

    /// Raises a fatal error in the event producer as librdkafka would (its test hook), so
    /// tests can prove that a fatal error fails readiness and stops the process. Only in
    /// builds with the `test-hooks` feature, which the integration tests enable.
    #[cfg(feature = "test-hooks")]
    pub fn raise_fatal_error_for_tests(&self, reason: &str) {
        let Ok(reason) = std::ffi::CString::new(reason) else { return };
        // SAFETY: the client pointer is valid for the producer's lifetime, and
        // rd_kafka_test_fatal_error only reads the NUL-terminated reason during the call.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                self.producer.client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__FENCED,
                reason.as_ptr(),
            );
        }
    }

    /// Whether the topic refuses records and which sources' DLQ breakers are open.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Publishes a batch: every record is enqueued first (many in flight), then the
    /// delivery reports are collected. Returns one outcome per event, in order:
    /// Delivered when the broker confirmed it; Rejected when it can never be accepted and
    /// the DLQ confirmed it; Retry otherwise, including when `deadline` passes. While the
    /// topic refuses records only the first event is sent, as a probe (see [`Refusals`]).
    pub async fn publish_batch(&self, events: &[CanonicalEvent], deadline: Instant) -> Vec<Outcome> {
        let Some(refusal) = self.refusals.topic_refusal() else {
            return self.publish_records(events, deadline).await;
        };
        let Some((probe, rest)) = events.split_first() else { return Vec::new() };
        let mut outcomes = self.publish_records(std::slice::from_ref(probe), deadline).await;
        if outcomes.first() == Some(&Outcome::Delivered) {
            outcomes.extend(self.publish_records(rest, deadline).await);
        } else {
            let reason = format!("not sent: the topic refuses records ({refusal}); waiting for a probe to be accepted");
            outcomes.extend(rest.iter().map(|_| Outcome::Retry(reason.clone())));
        }
        outcomes
    }

    async fn publish_records(&self, events: &[CanonicalEvent], deadline: Instant) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut in_flight = Vec::with_capacity(events.len());
        let mut failed = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let record = match EventRecord::from_event(event, self.value_format) {
                Ok(record) => record,
                Err(e) => {
                    outcomes[i] = Some(Outcome::Retry(format!("cannot encode the event: {e}")));
                    continue;
                }
            };
            match self.enqueue(&record, deadline).await {
                Ok(delivery) => in_flight.push((i, record, delivery)),
                Err(e) => failed.push((i, record, e)),
            }
        }
        for (i, record, delivery) in in_flight {
            match await_delivery(delivery, deadline).await {
                Ok(_) => {
                    self.refusals.topic_accepts();
                    if let Some(event) = events.get(i) {
                        self.refusals.accepted(&event.source);
                    }
                    outcomes[i] = Some(Outcome::Delivered);
                }
                Err(e) => failed.push((i, record, e)),
            }
        }
        for (i, record, error) in failed {
            let source = events.get(i).map_or("", |e| e.source.as_str());
            outcomes[i] = Some(self.refused(source, &record, &error, deadline).await);
        }
        outcomes.into_iter().map(|o| o.unwrap_or_else(|| Outcome::Retry("no outcome".into()))).collect()
    }

    /// What becomes of an event the broker did not confirm: the DLQ for a record it can
    /// never accept (unless the source's breaker is open), a pause for a topic that refuses
    /// records, a retry otherwise.
    async fn refused(&self, source: &str, record: &EventRecord, error: &SendError, deadline: Instant) -> Outcome {
        let reason = error.to_string();
        let SendError::Kafka(kafka_error) = error else { return Outcome::Retry(reason) };
        match error.class() {
            ErrorClass::TopicRefused => {
                self.refusals.topic_refused(&reason);
                Outcome::Retry(reason)
            }
            ErrorClass::Permanent if !self.refusals.may_dead_letter(source, &error_code_name(kafka_error)) => {
                Outcome::Retry(format!("{reason}; not dead-lettered: the DLQ breaker of {source} is open"))
            }
            ErrorClass::Permanent => {
                match self.dlq.write(record, &self.topic, &error_code_name(kafka_error), &reason, deadline).await {
                    Ok(()) => {
                        tracing::warn!(key = %record.key, %reason, "event rejected by the broker; sent to the DLQ");
                        Outcome::Rejected(reason)
                    }
                    Err(dlq_error) => Outcome::Retry(format!("{reason}; the DLQ did not take it either: {dlq_error}")),
                }
            }
            ErrorClass::QueueFull | ErrorClass::Transient => Outcome::Retry(reason),
        }
    }

    /// Puts one record in the producer queue, waiting while the queue is full.
    async fn enqueue(&self, record: &EventRecord, deadline: Instant) -> Result<DeliveryFuture, SendError> {
        send_waiting(&self.producer, &self.topic, None, record, record.owned_headers(), deadline).await
    }

    /// Sends an upstream payload that could not become an event (poison) to the DLQ, with
    /// the reason, and waits for the broker's confirmation.
    pub async fn dead_letter(
        &self,
        key: &str,
        payload: &(impl serde::Serialize + ?Sized),
        source: &str,
        reason: &str,
    ) -> Result<(), SendError> {
        let record = EventRecord {
            key: key.to_owned(),
            value: serde_json::to_vec(payload)?,
            headers: vec![("content-type", "application/json".to_owned()), ("paybridge_source", source.to_owned())],
        };
        let deadline = Instant::now() + self.delivery_timeout;
        self.dlq.write(&record, &self.topic, "ProcessingFailed", reason, deadline).await
    }

    /// Waits until every queued record is delivered or `timeout` passes (blocking).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)?;
        self.dlq.flush(timeout)
    }

    /// Whether the brokers answer a metadata request within `timeout` (blocking).
    pub fn metadata_reachable(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok_and(|m| !m.brokers().is_empty())
    }
}

/// Sends one record, waiting (backpressure) while the local queue is full, until `deadline`.
/// It goes to the partition its key gives, or to `partition`.
pub(crate) async fn send_waiting<C: ClientContext + 'static>(
    producer: &FutureProducer<C>,
    topic: &str,
    partition: Option<i32>,
    record: &EventRecord,
    headers: OwnedHeaders,
    deadline: Instant,
) -> Result<DeliveryFuture, SendError> {
    loop {
        let mut future_record = FutureRecord::to(topic)
            .key(record.key.as_bytes())
            .payload(record.value.as_slice())
            .headers(headers.clone());
        if let Some(partition) = partition {
            future_record = future_record.partition(partition);
        }
        match producer.send_result(future_record) {
            Ok(delivery) => return Ok(delivery),
            Err((e, _)) if classify(&e) == ErrorClass::QueueFull => {
                if Instant::now() >= deadline {
                    return Err(SendError::Deadline);
                }
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => return Err(SendError::Kafka(e)),
        }
    }
}

/// Awaits a delivery report, at most until `deadline` (plus a little, since librdkafka
/// reports every record by message.timeout.ms on its own).
pub(crate) async fn await_delivery(delivery: DeliveryFuture, deadline: Instant) -> Result<Written, SendError> {
    match tokio::time::timeout_at(deadline + Duration::from_secs(1), delivery).await {
        Ok(Ok(Ok(d))) => Ok(Written { partition: d.partition, offset: d.offset }),
        Ok(Ok(Err((e, _)))) => Err(SendError::Kafka(e)),
        Ok(Err(_)) => Err(SendError::Dropped),
        Err(_) => Err(SendError::Deadline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_guarantees_are_forced_and_user_properties_pass_through() {
        let text = "[kafka]\nbootstrap_servers = \"b:9092\"\ncompression = \"zstd\"\ndelivery_timeout = \"45s\"\n\
                    [kafka.properties]\n\"linger.ms\" = \"20\"\n\"sasl.username\" = \"u\"\n";
        let kafka = crate::config::load(text, &Default::default()).map(|c| c.kafka);
        let Ok(kafka) = kafka else { panic!("{kafka:?}") };
        let config = producer_config(&kafka);
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("message.timeout.ms"), Some("45000"));
        assert_eq!(config.get("linger.ms"), Some("20"), "the user's value wins over paybridge's default");
        assert_eq!(config.get("sasl.username"), Some("u"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }
}
