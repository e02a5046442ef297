//! The transactional writer for cursor sources: a page's events and the source's position
//! in one Kafka transaction, with zombie fencing by `transactional.id`
//! (`<kafka.transactional_id_prefix>-<source>`: a restarted instance fences the old one,
//! and two deployments with different prefixes never fence each other).
//!
//! [`machine`] decides what happens after each step; this module is librdkafka's side.
//! Brokers without transactions (tansu 0.6.0 among them) fail the start-up probe, and
//! paybridge refuses to start with `kafka.exactly_once = true` on them.

pub mod machine;

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::machine::{
    Ended, FINISH_RETRY_PAUSE, Failure, Finish, Finished, Limits, Outbound, PageOutcome, RecordFailure, Target,
    Transactions, commit_page, finish,
};
use super::access::principal;
use super::errors::{ErrorClass, classify, error_code_name};
use super::kafka::{EventRecord, SendError, await_delivery, producer_config, send_waiting};
use super::refusals::Refusals;
use super::topics::max_message_bytes;
use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;
use crate::sink::wire::ValueFormat;

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error(
        "kafka.exactly_once = true, but the broker does not support transactions ({0}); \
         use a broker with transactions (Apache Kafka, Redpanda) or set kafka.exactly_once = false"
    )]
    Unsupported(String),
    #[error(
        "kafka.exactly_once = true, but the broker did not finish a test transaction within {}s \
         ({reason}); check that the brokers are reachable and their transaction coordinator is \
         up (a new cluster creates its __transaction_state topic on first use)",
        .budget.as_secs()
    )]
    NoAnswer { budget: Duration, reason: String },
    #[error(
        "{principal} may not Write on transactional id {transactional_id} ({reason}); exactly-once mode needs \
         Write and Describe on the transactional ids prefixed kafka.transactional_id_prefix (docs: Connecting to Kafka)"
    )]
    Denied { principal: String, transactional_id: String, reason: String },
    #[error("cannot create the transactional producer: {0}")]
    Producer(KafkaError),
}

/// As for the DLQ producer: a record too large for the events topic is refused by the
/// broker (a permanent, abortable error), so the next attempt can put it in the DLQ.
const MAX_MESSAGE_BYTES: &str = "1000000000";

/// librdkafka's default `batch.size`: produce batches stay at most this large.
const MAX_BATCH_BYTES: usize = 1_000_000;

/// The events topic's and the DLQ's `max.message.bytes`, or Kafka's default when they
/// cannot be read (with a warning: an event over a real, smaller limit would stall its page).
async fn topic_limits(kafka: &KafkaConfig) -> Limits {
    let topics = [kafka.topic.as_str(), kafka.dlq_topic.as_str()];
    match max_message_bytes(kafka, &topics, kafka.metadata_timeout.get()).await.as_deref() {
        Ok(&[events, dlq]) => Limits { events, dlq },
        Ok(_) => Limits { events: KAFKA_DEFAULT_MAX_MESSAGE_BYTES, dlq: KAFKA_DEFAULT_MAX_MESSAGE_BYTES },
        Err(e) => {
            tracing::warn!(error = %e, assumed = KAFKA_DEFAULT_MAX_MESSAGE_BYTES, "cannot read the topics' max.message.bytes; assuming Kafka's default");
            Limits { events: KAFKA_DEFAULT_MAX_MESSAGE_BYTES, dlq: KAFKA_DEFAULT_MAX_MESSAGE_BYTES }
        }
    }
}

/// How long the start-up probe keeps calling a step that times out again: four of its calls,
/// and at least 30 s (a new cluster's coordinator takes seconds to create its topic).
fn probe_budget(call_timeout: Duration) -> Duration {
    call_timeout.saturating_mul(4).max(Duration::from_secs(30))
}

/// The shortest transaction timeout paybridge asks for (librdkafka's default).
const MIN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// A transactional producer for one cursor source. Every operation takes `&mut self`: two
/// transactions on one writer cannot overlap. One page after the other compiles:
///
/// ```no_run
/// # use paybridge::sink::{kafka::EventRecord, transaction::TransactionalWriter};
/// # use tokio_util::sync::CancellationToken;
/// async fn one_after_the_other(w: &mut TransactionalWriter, p: &EventRecord, stop: &CancellationToken) {
///     let _ = w.commit_page(&[], p, stop).await;
///     let _ = w.commit_page(&[], p, stop).await;
/// }
/// ```
///
/// two at once does not:
///
/// ```compile_fail,E0499
/// # use paybridge::sink::{kafka::EventRecord, transaction::TransactionalWriter};
/// # use tokio_util::sync::CancellationToken;
/// async fn two_at_once(w: &mut TransactionalWriter, p: &EventRecord, stop: &CancellationToken) {
///     let _ = tokio::join!(w.commit_page(&[], p, stop), w.commit_page(&[], p, stop));
/// }
/// ```
pub struct TransactionalWriter {
    producer: FutureProducer,
    /// The producer takes a rotated SASL password.
    _credentials: std::sync::Arc<super::credentials::Registration>,
    /// Where a topic that refuses records and the DLQ breaker are tracked (readiness, the
    /// alert metrics), as for the pipeline's producer.
    refusals: Option<Refusals>,
    events_topic: String,
    dlq_topic: String,
    state_topic: String,
    /// How long one init/commit/abort call may block.
    call_timeout: Duration,
    delivery_timeout: Duration,
    value_format: ValueFormat,
    limits: Limits,
}

/// Kafka's default `max.message.bytes`, assumed for a topic whose configuration cannot be
/// read (the principal may lack DescribeConfigs).
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// The `transactional.id` of a source's writer.
pub fn transactional_id(prefix: &str, source: &str) -> String {
    format!("{prefix}-{source}")
}

impl TransactionalWriter {
    /// Creates the producer, initializes transactions and commits a probe transaction
    /// (one record to the state topic), so a broker without transactions fails here, at
    /// start, rather than at the first real commit.
    pub async fn start(kafka: &KafkaConfig, source: &str, value_format: ValueFormat) -> Result<Self, TransactionError> {
        let delivery_timeout = kafka.delivery_timeout.get();
        let transaction_timeout = MIN_TRANSACTION_TIMEOUT.max(delivery_timeout + kafka.metadata_timeout.get());
        let limits = topic_limits(kafka).await;
        let mut config = producer_config(kafka);
        config
            .set("transactional.id", transactional_id(&kafka.transactional_prefix(), source))
            .set("transaction.timeout.ms", transaction_timeout.as_millis().to_string())
            .set("message.max.bytes", MAX_MESSAGE_BYTES)
            // No produce batch over the events topic's limit: the broker would refuse the
            // whole batch, and the transaction with it (a larger event is sent alone).
            .set("batch.size", limits.events.clamp(1, MAX_BATCH_BYTES).to_string());
        let producer: FutureProducer = config.create().map_err(TransactionError::Producer)?;
        let mut writer = Self {
            _credentials: super::credentials::register(producer.clone()),
            producer,
            refusals: None,
            events_topic: kafka.topic.clone(),
            dlq_topic: kafka.dlq_topic.clone(),
            state_topic: kafka.state_topic.clone(),
            call_timeout: kafka.metadata_timeout.get(),
            delivery_timeout,
            value_format,
            limits,
        };
        writer.probe(kafka, source).await?;
        Ok(writer)
    }

    /// One transaction with a record in the state topic, before the source starts. A broker
    /// without transactions refuses a step for good ([`TransactionError::Unsupported`]); a
    /// step that only times out (a coordinator still starting, a slow network) is called
    /// again, as librdkafka allows, until [`probe_budget`] has passed
    /// ([`TransactionError::NoAnswer`]).
    async fn probe(&mut self, kafka: &KafkaConfig, source: &str) -> Result<(), TransactionError> {
        let budget = probe_budget(self.call_timeout);
        let deadline = CancellationToken::new();
        let cancel = deadline.clone();
        // Once at start: the timer may outlive the probe by up to `budget`, cancelling a
        // token nobody watches any more.
        tokio::spawn(async move {
            tokio::time::sleep(budget).await;
            cancel.cancel();
        });
        let no_answer = |reason: String| TransactionError::NoAnswer { budget, reason };
        self.init(&deadline).await.map_err(|e| match e {
            Ok(reason) => TransactionError::Denied {
                principal: principal(kafka),
                transactional_id: transactional_id(&kafka.transactional_prefix(), source),
                reason,
            },
            Err(Failure::Retriable(reason)) => no_answer(reason),
            Err(Failure::Fatal(reason) | Failure::Abortable(reason)) => TransactionError::Unsupported(reason),
        })?;
        let probe = EventRecord {
            key: format!("{source}.probe"),
            value: b"{}".to_vec(),
            headers: vec![("content-type", "application/json".to_owned())],
        };
        self.begin().await.map_err(|e| TransactionError::Unsupported(describe(e)))?;
        let sent = self.send(&[Outbound { target: Target::State, record: probe }]).await;
        if let Some(Err(e)) = sent.into_iter().next() {
            let _ = finish(self, Finish::Abort, &deadline).await;
            return Err(match e {
                RecordFailure::Transient(reason) => no_answer(reason),
                RecordFailure::Permanent { reason, .. } | RecordFailure::TopicRefused(reason) => {
                    TransactionError::Unsupported(reason)
                }
            });
        }
        match finish(self, Finish::Commit, &deadline).await {
            Ok(Finished::Committed) => Ok(()),
            Ok(Finished::Aborted(reason)) | Err(Ended::Fatal(reason)) => Err(TransactionError::Unsupported(reason)),
            Err(Ended::InDoubt) => Err(no_answer("the commit was not confirmed".into())),
        }
    }

    /// `init_transactions`, called again after each timeout until `deadline` is cancelled.
    /// Initializes transactions; Err(Ok(reason)) when the broker refused the principal the
    /// transactional id (or the cluster), Err(Err(failure)) otherwise.
    async fn init(&mut self, deadline: &CancellationToken) -> Result<(), Result<String, Failure>> {
        loop {
            let producer = self.producer.clone();
            let timeout = self.call_timeout;
            let called = blocking(move || producer.init_transactions(timeout)).await;
            if let Err(e) = &called
                && matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                            | RDKafkaErrorCode::ClusterAuthorizationFailed
                    )
                )
            {
                return Err(Ok(e.to_string()));
            }
            match called.map_err(failure).map_err(Err) {
                Err(Err(Failure::Retriable(reason))) if !deadline.is_cancelled() => {
                    tracing::warn!(%reason, "the transaction coordinator has not answered yet; asking again");
                    tokio::select! {
                        _ = deadline.cancelled() => return Err(Err(Failure::Retriable(reason))),
                        _ = tokio::time::sleep(FINISH_RETRY_PAUSE) => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// Reports a topic that refuses records and the DLQ breaker to `refusals` (shared with
    /// the pipeline's producer: one readiness reason, one alert metric).
    pub fn report_refusals_to(&mut self, refusals: Refusals) {
        self.refusals = Some(refusals);
    }

    /// Sends `events` and the position `record` in one transaction (see [`machine`]).
    pub async fn commit_page(
        &mut self,
        events: &[CanonicalEvent],
        position: &EventRecord,
        stop: &CancellationToken,
    ) -> Result<PageOutcome, Ended> {
        let events_topic = self.events_topic.clone();
        commit_page(self, events, position, &events_topic, stop).await
    }

    /// Raises a fatal error in the transactional producer as librdkafka would (its test
    /// hook): `fenced` as another instance's fencing, otherwise as a coordinator's refusal.
    #[cfg(feature = "test-hooks")]
    pub fn raise_fatal_error_for_tests(&self, fenced: bool) {
        use rdkafka::types::RDKafkaRespErr as E;
        let code = if fenced { E::RD_KAFKA_RESP_ERR__FENCED } else { E::RD_KAFKA_RESP_ERR_INVALID_TXN_STATE };
        let reason = if fenced { c"test: fenced by a newer instance" } else { c"test: invalid transaction state" };
        // SAFETY: the client pointer is valid for the producer's lifetime; the reason is a
        // NUL-terminated literal.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(self.producer.client().native_ptr(), code, reason.as_ptr());
        }
    }

    /// librdkafka's fatal error of the producer, once it has one (it can never commit again).
    pub fn fatal_error(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{reason} ({code:?})"))
    }

    fn topic(&self, target: Target) -> &str {
        match target {
            Target::Events => &self.events_topic,
            Target::Dlq => &self.dlq_topic,
            Target::State => &self.state_topic,
        }
    }
}

impl Transactions for TransactionalWriter {
    fn value_format(&self) -> ValueFormat {
        self.value_format
    }

    fn limits(&self) -> Option<Limits> {
        Some(self.limits)
    }

    async fn begin(&mut self) -> Result<(), Failure> {
        self.producer.begin_transaction().map_err(failure)
    }

    fn topic_refused(&mut self, reason: &str) {
        if let Some(refusals) = &self.refusals {
            refusals.topic_refused(reason);
        }
    }

    fn may_dead_letter(&mut self, source: &str, code: &str) -> bool {
        self.refusals.as_ref().is_none_or(|r| r.may_dead_letter(source, code))
    }

    fn committed(&mut self, delivered_sources: &[&str]) {
        if let Some(refusals) = &self.refusals {
            refusals.topic_accepts();
            for source in delivered_sources {
                refusals.accepted(source);
            }
        }
    }

    async fn send(&mut self, records: &[Outbound]) -> Vec<Result<(), RecordFailure>> {
        let deadline = Instant::now() + self.delivery_timeout;
        let mut in_flight = Vec::with_capacity(records.len());
        for outbound in records {
            let record = &outbound.record;
            let topic = self.topic(outbound.target);
            in_flight.push(send_waiting(&self.producer, topic, None, record, record.owned_headers(), deadline).await);
        }
        let mut results = Vec::with_capacity(records.len());
        for sent in in_flight {
            let delivered = match sent {
                Ok(delivery) => await_delivery(delivery, deadline).await.map(|_| ()),
                Err(e) => Err(e),
            };
            results.push(delivered.map_err(record_failure));
        }
        results
    }

    async fn commit(&mut self) -> Result<(), Failure> {
        let producer = self.producer.clone();
        let timeout = self.call_timeout;
        blocking(move || producer.commit_transaction(timeout)).await.map_err(failure)
    }

    async fn abort(&mut self) -> Result<(), Failure> {
        let producer = self.producer.clone();
        let timeout = self.call_timeout;
        blocking(move || producer.abort_transaction(timeout)).await.map_err(failure)
    }
}

/// librdkafka's class of a transaction error. An error without a class (a cancelled call)
/// may be retried: whether it took effect is unknown. A request the broker does not support
/// (tansu 0.6.0's EndTxn) can never succeed, though librdkafka calls it retriable.
fn failure(error: KafkaError) -> Failure {
    let text = error.to_string();
    match &error {
        KafkaError::Transaction(e) if e.is_fatal() => Failure::Fatal(text),
        KafkaError::Transaction(e) if e.code() == RDKafkaErrorCode::UnsupportedFeature => Failure::Fatal(text),
        KafkaError::Transaction(e) if e.txn_requires_abort() => Failure::Abortable(text),
        KafkaError::Transaction(e) if !e.is_retriable() => Failure::Abortable(text),
        _ => Failure::Retriable(text),
    }
}

fn record_failure(error: SendError) -> RecordFailure {
    match &error {
        SendError::Kafka(kafka) => match classify(kafka) {
            ErrorClass::Permanent => {
                RecordFailure::Permanent { code: error_code_name(kafka), reason: error.to_string() }
            }
            ErrorClass::TopicRefused => RecordFailure::TopicRefused(error.to_string()),
            _ => RecordFailure::Transient(error.to_string()),
        },
        _ => RecordFailure::Transient(error.to_string()),
    }
}

fn describe(failure: Failure) -> String {
    match failure {
        Failure::Retriable(r) | Failure::Abortable(r) | Failure::Fatal(r) => r,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(KafkaError::Canceled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transactional_id_carries_the_deployment_prefix() {
        assert_eq!(transactional_id("eu-prod", "pd-main"), "eu-prod-pd-main");
        assert_ne!(transactional_id("eu-prod", "pd"), transactional_id("eu-staging", "pd"));
    }

    #[test]
    fn errors_outside_a_transaction_call_are_retried_not_guessed() {
        assert!(matches!(failure(KafkaError::Canceled), Failure::Retriable(_)));
    }
}
