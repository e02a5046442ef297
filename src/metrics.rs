//! Prometheus metrics, in an explicit registry owned by the running bridge.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ack::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub source: String,
    /// See [`crate::intake::guard::Refusal::reason`].
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub source: String,
    pub endpoint: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamErrorLabels {
    pub source: String,
    pub endpoint: String,
    pub status: String,
    /// The provider's own error code (see [`crate::http::client::error_code`]).
    pub code: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn lag_histogram() -> Histogram {
    // 50 ms … ~1.8 h: a webhook's seconds to a cursor's safety lag to an outage's hours.
    Histogram::new(exponential_buckets(0.05, 2.0, 18))
}

/// Every `reason` of `paybridge_webhook_rejected_total` (the intake's refusals; a test
/// there checks each one is listed), registered at zero for every webhook source.
pub const WEBHOOK_REFUSAL_REASONS: [&str; 11] = [
    "forbidden",
    "bad_token",
    "saturated",
    "rate_limited",
    "body_timeout",
    "too_large",
    "body_unreadable",
    "bad_signature",
    "stale_timestamp",
    "too_deep",
    "malformed",
];

/// Every series paybridge exports.
pub struct Metrics {
    registry: Registry,
    received: Family<SourceLabels, Counter>,
    published: Family<SourceLabels, Counter>,
    acked: Family<SourceLabels, Counter>,
    rejected: Family<SourceLabels, Counter>,
    retried: Family<SourceLabels, Counter>,
    dlq: Counter,
    publish_latency: Family<SourceLabels, Histogram, fn() -> Histogram>,
    end_to_end_lag: Family<SourceLabels, Histogram, fn() -> Histogram>,
    upstream_failures: Family<SourceLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    source_alert: Family<SourceLabels, Gauge>,
    enrichment_failed: Family<SourceLabels, Counter>,
    webhook_ignored: Family<SourceLabels, Counter>,
    pipeline_depth: Gauge,
    last_poll: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    cursor_position: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    clock_skew: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    ack_invalid: Family<SourceLabels, Counter>,
    webhook_unknown: Family<SourceLabels, Counter>,
    processing_failures: Family<SourceLabels, Counter>,
    webhook_rejected: Family<RefusalLabels, Counter>,
    ack_failed: Family<SourceLabels, Counter>,
    producer_fatal: Gauge,
    topic_refusing: Gauge,
    dlq_breaker_open: Family<SourceLabels, Gauge>,
    singleton_owned: Family<TaskLabels, Gauge>,
    topic_durability_weak: Family<TopicLabels, Gauge>,
    singleton_tenures: Family<TaskLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("paybridge");
        let received = Family::<SourceLabels, Counter>::default();
        let published = Family::<SourceLabels, Counter>::default();
        let acked = Family::<SourceLabels, Counter>::default();
        let rejected = Family::<SourceLabels, Counter>::default();
        let retried = Family::<SourceLabels, Counter>::default();
        let dlq = Counter::default();
        let publish_latency = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let end_to_end_lag = Family::<SourceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            lag_histogram as fn() -> Histogram,
        );
        let upstream_failures = Family::<SourceLabels, Counter>::default();
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        let source_alert = Family::<SourceLabels, Gauge>::default();
        let enrichment_failed = Family::<SourceLabels, Counter>::default();
        let webhook_ignored = Family::<SourceLabels, Counter>::default();
        let pipeline_depth = Gauge::default();
        let last_poll = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        let cursor_position = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        let clock_skew = Family::<SourceLabels, Gauge<f64, AtomicU64>>::default();
        let ack_invalid = Family::<SourceLabels, Counter>::default();
        let webhook_unknown = Family::<SourceLabels, Counter>::default();
        let processing_failures = Family::<SourceLabels, Counter>::default();
        let webhook_rejected = Family::<RefusalLabels, Counter>::default();
        let ack_failed = Family::<SourceLabels, Counter>::default();
        let producer_fatal = Gauge::default();
        let topic_refusing = Gauge::default();
        let dlq_breaker_open = Family::<SourceLabels, Gauge>::default();
        let singleton_owned = Family::<TaskLabels, Gauge>::default();
        let singleton_tenures = Family::<TaskLabels, Counter>::default();
        let topic_durability_weak = Family::<TopicLabels, Gauge>::default();
        registry.register(
            "topic_durability_weak",
            "1 for a topic paybridge writes whose replication factor is below 3, min.insync.replicas below 2 or unclean leader election on (read at start)",
            topic_durability_weak.clone(),
        );
        registry.register(
            "singleton_owned",
            "With [cluster]: 1 while this replica runs the singleton task (a Payments Direct cursor cycle, a RippleNet sweeper)",
            singleton_owned.clone(),
        );
        registry.register(
            "singleton_tenures",
            "With [cluster]: times this replica took a singleton task over",
            singleton_tenures.clone(),
        );
        registry.register(
            "ack_failed",
            "Notifications whose acknowledgement call failed (kept and retried with backoff)",
            ack_failed.clone(),
        );
        registry.register(
            "producer_fatal",
            "1 when the Kafka producer hit a fatal error (the process exits for a restart)",
            producer_fatal.clone(),
        );
        registry.register(
            "topic_refusing",
            "1 while the events topic refuses records (topic or broker misconfiguration): publishing paused, nothing acknowledged",
            topic_refusing.clone(),
        );
        registry.register(
            "dlq_breaker_open",
            "1 while a source's DLQ breaker is open (too many of its events refused by the broker): not dead-lettered, not acknowledged",
            dlq_breaker_open.clone(),
        );
        registry.register(
            "webhook_rejected",
            "Webhook calls refused, by reason (forbidden, bad_token, saturated, rate_limited, body_timeout, too_large, body_unreadable, bad_signature, stale_timestamp, too_deep, malformed)",
            webhook_rejected.clone(),
        );
        registry.register(
            "ack_invalid",
            "Acknowledgements the provider refused as invalid (logged, not retried)",
            ack_invalid.clone(),
        );
        registry.register(
            "webhook_unknown",
            "Webhooks for notifications the provider does not know (answered 200)",
            webhook_unknown.clone(),
        );
        registry.register(
            "processing_failures",
            "Notifications that could not be fetched or normalized (each attempt)",
            processing_failures.clone(),
        );
        registry.register("events_received", "Events sources submitted to the pipeline", received.clone());
        registry.register("events_published", "Events the broker confirmed (acks=all)", published.clone());
        registry.register("events_acked", "Events acknowledged upstream after their commit", acked.clone());
        registry.register(
            "events_rejected",
            "Events the broker permanently refused, sent to the DLQ",
            rejected.clone(),
        );
        registry.register("events_retried", "Events not confirmed in time, left for redelivery", retried.clone());
        registry.register("dlq_events", "Events written to the DLQ topic", dlq.clone());
        registry.register(
            "publish_latency_seconds",
            "Time from a batch's submission to its outcome",
            publish_latency.clone(),
        );
        registry.register(
            "end_to_end_lag_seconds",
            "From the provider's time of a state change (the event's time) to the broker's confirmation of its event",
            end_to_end_lag.clone(),
        );
        registry.register(
            "upstream_failures",
            "Provider API calls that failed: an error status or no answer (by code: upstream_errors)",
            upstream_failures.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests to provider APIs by endpoint and HTTP status",
            upstream_requests.clone(),
        );
        registry.register(
            "upstream_errors",
            "Provider error answers by endpoint, HTTP status and the provider's own error code",
            upstream_errors.clone(),
        );
        registry.register(
            "source_alert",
            "1 while a source has failed alert_after times in a row (until its next success)",
            source_alert.clone(),
        );
        registry.register(
            "enrichment_failed",
            "Events published without their failure details because fetching them kept failing",
            enrichment_failed.clone(),
        );
        registry.register(
            "webhook_ignored",
            "Webhooks of an event type paybridge does not act on (answered 200)",
            webhook_ignored.clone(),
        );
        registry.register("pipeline_depth", "Events inside the pipeline (queued or in flight)", pipeline_depth.clone());
        registry.register(
            "last_successful_poll_timestamp_seconds",
            "Unix time of each source's last successful poll",
            last_poll.clone(),
        );
        registry.register(
            "cursor_position_timestamp_seconds",
            "Unix time up to which a cursor source's state changes are in Kafka (its committed position)",
            cursor_position.clone(),
        );
        registry.register(
            "clock_skew_seconds",
            "paybridge's clock minus the provider's, from the Date of its answers (positive: paybridge is ahead)",
            clock_skew.clone(),
        );
        Self {
            registry,
            received,
            published,
            acked,
            rejected,
            retried,
            dlq,
            publish_latency,
            end_to_end_lag,
            upstream_failures,
            upstream_requests,
            upstream_errors,
            source_alert,
            enrichment_failed,
            webhook_ignored,
            pipeline_depth,
            last_poll,
            cursor_position,
            clock_skew,
            ack_invalid,
            webhook_unknown,
            processing_failures,
            webhook_rejected,
            ack_failed,
            singleton_owned,
            singleton_tenures,
            topic_durability_weak,
            producer_fatal,
            topic_refusing,
            dlq_breaker_open,
        }
    }

    fn labels(source: &str) -> SourceLabels {
        SourceLabels { source: source.to_owned() }
    }

    /// Creates a source's series at zero, so dashboards and alerts see every source from
    /// the start instead of "no data" until its first event, failure or refusal. (Series
    /// whose value only a first occurrence gives stay absent until then: the last poll's
    /// time, a cursor's position, the clock skew, and requests by status and errors by code.)
    pub fn register_source(&self, source: &str, webhooks: bool) {
        let labels = Self::labels(source);
        for family in [
            &self.received,
            &self.published,
            &self.acked,
            &self.rejected,
            &self.retried,
            &self.upstream_failures,
            &self.ack_invalid,
            &self.ack_failed,
            &self.processing_failures,
            &self.enrichment_failed,
        ] {
            drop(family.get_or_create(&labels));
        }
        drop(self.publish_latency.get_or_create(&labels));
        drop(self.end_to_end_lag.get_or_create(&labels));
        drop(self.source_alert.get_or_create(&labels));
        if webhooks {
            drop(self.webhook_unknown.get_or_create(&labels));
            drop(self.webhook_ignored.get_or_create(&labels));
            for reason in WEBHOOK_REFUSAL_REASONS {
                let labels = RefusalLabels { source: source.to_owned(), reason: reason.to_owned() };
                drop(self.webhook_rejected.get_or_create(&labels));
            }
        }
    }

    /// A source submitted `n` events.
    pub fn received(&self, source: &str, n: usize) {
        self.received.get_or_create(&Self::labels(source)).inc_by(n as u64);
    }

    /// A batch resolved after `latency`; `times` are its events' provider times (the
    /// delivered ones' lag to now is observed).
    pub fn batch_resolved(
        &self,
        source: &str,
        outcomes: &[Outcome],
        times: impl Iterator<Item = chrono::DateTime<chrono::Utc>>,
        latency: Duration,
    ) {
        let labels = Self::labels(source);
        let now = chrono::Utc::now();
        let lag = self.end_to_end_lag.get_or_create(&labels);
        for (outcome, time) in outcomes.iter().zip(times) {
            if *outcome == Outcome::Delivered {
                // A provider clock ahead of ours gives a negative lag: counted as none.
                lag.observe((now - time).as_seconds_f64().max(0.0));
            }
        }
        drop(lag);
        let count = |pred: fn(&Outcome) -> bool| outcomes.iter().filter(|o| pred(o)).count() as u64;
        let delivered = count(|o| *o == Outcome::Delivered);
        let rejected = count(|o| matches!(o, Outcome::Rejected(_)));
        let retried = count(|o| matches!(o, Outcome::Retry(_)));
        self.published.get_or_create(&labels).inc_by(delivered);
        self.rejected.get_or_create(&labels).inc_by(rejected);
        self.retried.get_or_create(&labels).inc_by(retried);
        self.dlq.inc_by(rejected);
        self.publish_latency.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// A source acknowledged `n` events upstream.
    pub fn acked(&self, source: &str, n: usize) {
        self.acked.get_or_create(&Self::labels(source)).inc_by(n as u64);
    }

    /// A source called a provider endpoint and got `status` (an HTTP code, or `error`).
    pub fn upstream_request(&self, source: &str, endpoint: &str, status: &str) {
        let labels =
            UpstreamLabels { source: source.to_owned(), endpoint: endpoint.to_owned(), status: status.to_owned() };
        self.upstream_requests.get_or_create(&labels).inc();
        if !(status.starts_with('2') || status.starts_with('3')) {
            self.upstream_failures.get_or_create(&Self::labels(source)).inc();
        }
    }

    /// A provider answered an error: `code` is its own error code (gRPC code, OAuth error,
    /// J.P. Morgan title) or `none`.
    pub fn upstream_error(&self, source: &str, endpoint: &str, status: &str, code: &str) {
        let labels = UpstreamErrorLabels {
            source: source.to_owned(),
            endpoint: endpoint.to_owned(),
            status: status.to_owned(),
            code: code.to_owned(),
        };
        self.upstream_errors.get_or_create(&labels).inc();
    }

    /// Raises or clears a source's alert.
    pub fn source_alert(&self, source: &str, on: bool) {
        self.source_alert.get_or_create(&SourceLabels { source: source.to_owned() }).set(i64::from(on));
    }

    /// Whether this replica runs the singleton `task` now.
    pub fn singleton_owned(&self, task: &str, owned: bool) {
        self.singleton_owned.get_or_create(&TaskLabels { task: task.to_owned() }).set(i64::from(owned));
    }

    /// Whether `topic` falls short of the durability the guarantee rests on.
    pub fn topic_durability(&self, topic: &str, weak: bool) {
        self.topic_durability_weak.get_or_create(&TopicLabels { topic: topic.to_owned() }).set(i64::from(weak));
    }

    /// This replica took the singleton `task` over.
    pub fn singleton_tenure(&self, task: &str) {
        self.singleton_tenures.get_or_create(&TaskLabels { task: task.to_owned() }).inc();
    }

    /// An event went out without its failure details.
    pub fn enrichment_failed(&self, source: &str) {
        self.enrichment_failed.get_or_create(&SourceLabels { source: source.to_owned() }).inc();
    }

    /// A webhook of an event type paybridge does not act on.
    pub fn webhook_ignored(&self, source: &str) {
        self.webhook_ignored.get_or_create(&SourceLabels { source: source.to_owned() }).inc();
    }

    /// A source finished a poll successfully now.
    pub fn polled(&self, source: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.last_poll.get_or_create(&Self::labels(source)).set(now);
    }

    /// A cursor source's position: every state change before `at` is in Kafka.
    pub fn clock_skew(&self, source: &str, skew: chrono::TimeDelta) {
        let seconds = skew.num_milliseconds() as f64 / 1000.0;
        self.clock_skew.get_or_create(&Self::labels(source)).set(seconds);
    }

    pub fn cursor_position(&self, source: &str, at: chrono::DateTime<chrono::Utc>) {
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        self.cursor_position.get_or_create(&Self::labels(source)).set(seconds);
    }

    pub fn ack_invalid(&self, source: &str, n: usize) {
        self.ack_invalid.get_or_create(&Self::labels(source)).inc_by(n as u64);
    }

    pub fn ack_failed(&self, source: &str, n: usize) {
        self.ack_failed.get_or_create(&Self::labels(source)).inc_by(n as u64);
    }

    /// A source wrote a payload that cannot become an event to the DLQ (confirmed).
    pub fn dead_lettered(&self) {
        self.dlq.inc();
    }

    pub fn producer_fatal(&self) {
        self.producer_fatal.set(1);
    }

    /// The topic refuses records, or accepts them again.
    pub fn topic_refusing(&self, refusing: bool) {
        self.topic_refusing.set(i64::from(refusing));
    }

    /// `source`'s DLQ breaker opened or closed (by its CloudEvents source).
    pub fn dlq_breaker(&self, source: &str, open: bool) {
        self.dlq_breaker_open.get_or_create(&Self::labels(source)).set(i64::from(open));
    }

    pub fn webhook_unknown(&self, source: &str) {
        self.webhook_unknown.get_or_create(&Self::labels(source)).inc();
    }

    pub fn processing_failure(&self, source: &str) {
        self.processing_failures.get_or_create(&Self::labels(source)).inc();
    }

    pub fn webhook_rejected(&self, source: &str, reason: &str) {
        self.webhook_rejected
            .get_or_create(&RefusalLabels { source: source.to_owned(), reason: reason.to_owned() })
            .inc();
    }

    pub fn set_pipeline_depth(&self, depth: usize) {
        self.pipeline_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The exposition text (OpenMetrics, which Prometheus scrapes natively).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
