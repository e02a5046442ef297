//! Start-up steps of the bridge before anything is read: the topics, and the singleton tasks
//! the cluster coordinates.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::config::{Config, SourceConfig};
use crate::http::backoff::Backoff;
use crate::metrics::Metrics;
use crate::sink::access::{denials, needs, principal};
use crate::sink::describe::TopicDescription;
use crate::sink::durability;
use crate::sink::topics::{TopicError, ensure_topics, required_topics};
use crate::sources::ripplenet::{Poller, health_name};

/// Longest wait between start-up attempts while the brokers are unreachable.
const STARTUP_RETRY_MAX: Duration = Duration::from_secs(30);

/// Checks (or creates) the topics and that the principal may do on each what the mode does,
/// retrying with backoff while the brokers are unreachable, for at most
/// `kafka.startup_timeout`; then the unreachable error. A topic the principal cannot see or
/// an operation it may not perform fails at once, naming the principal, the topic and the
/// operation. Ok(false) when `stop` was cancelled first.
pub(super) async fn wait_for_topics(
    config: &Config,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<bool, RunError> {
    let has_cursor_sources = config.sources.iter().any(|s| s.provider() == crate::event::Provider::PaymentsDirect);
    let topics = required_topics(&config.kafka, has_cursor_sources, config.cluster.as_ref());
    let mut backoff = Backoff::new(STARTUP_RETRY_MAX);
    let limit = config.kafka.startup_timeout.get();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match ensure_topics(&config.kafka, &topics, config.kafka.metadata_timeout.get()).await {
            Ok(described) => {
                let coordination = config.cluster.as_ref().map(|c| c.topic.as_str());
                let needs = needs(&config.kafka, has_cursor_sources, coordination);
                let denials = denials(&needs, &described);
                if !denials.is_empty() {
                    return Err(TopicError::Denied { principal: principal(&config.kafka), denials }.into());
                }
                // The topics paybridge writes: its guarantee rests on their durability.
                let written: Vec<TopicDescription> =
                    described.into_iter().filter(|d| needs.iter().any(|n| n.topic == d.name && n.written())).collect();
                check_durability(config, &written, metrics).await?;
                return Ok(true);
            }
            Err(e @ TopicError::Unreachable { .. }) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    tracing::error!(error = %e, waited_s = limit.as_secs(), "brokers unreachable for kafka.startup_timeout; giving up");
                    return Err(e.into());
                }
                let wait = backoff.next(None).min(left);
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, left_s = left.as_secs(), "brokers unreachable; nothing is polled or acknowledged until they answer (readiness fails meanwhile)");
                if crate::sources::pause(stop, wait).await {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads each topic's durability settings: a weak topic is one warning line at every start
/// (with its values) and `paybridge_topic_durability_weak{topic} 1`; with
/// `kafka.require_durable_topics` it stops the start naming each shortfall.
async fn check_durability(config: &Config, described: &[TopicDescription], metrics: &Metrics) -> Result<(), RunError> {
    let read = durability::read(&config.kafka, described, config.kafka.metadata_timeout.get()).await;
    let mut weak = Vec::new();
    for topic in read {
        let weaknesses = topic.weaknesses();
        metrics.topic_durability(&topic.topic, !weaknesses.is_empty());
        if !weaknesses.is_empty() {
            tracing::warn!(
                topic = %topic.topic,
                shortfalls = %weaknesses.join(", "),
                "topic cannot give the durability acks=all promises (a confirmed event may be lost with one broker); \
                 use replication factor 3, min.insync.replicas=2, unclean.leader.election.enable=false \
                 (kafka.require_durable_topics = true refuses to start on such a topic)"
            );
            weak.push((topic.topic, weaknesses));
        }
    }
    if config.kafka.require_durable_topics && !weak.is_empty() {
        return Err(TopicError::NotDurable(weak).into());
    }
    Ok(())
}

/// The singleton tasks of `config` (their readiness names): each RippleNet source's SENT
/// sweeper and each Payments Direct source's cursor cycle.
pub(super) fn singleton_tasks(config: &Config) -> Vec<String> {
    let mut tasks = Vec::new();
    for source in &config.sources {
        match source {
            SourceConfig::Ripplenet(cfg) => tasks.push(health_name(&cfg.name, Poller::Sent)),
            SourceConfig::PaymentsDirect(cfg) => tasks.push(cfg.name.clone()),
            SourceConfig::Checkout(_) => {}
        }
    }
    tasks
}
