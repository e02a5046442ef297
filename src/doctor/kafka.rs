//! The Kafka checks, in the order a connection is made: reachable, TLS, authenticated, the
//! topics, then what the mode does first (its producer's initialisation, the group join).

use std::time::Duration;

use super::connection::{reachable, secured};
use super::probe::{Init, idempotent_init, join_group, transactional_init};
use super::topics::acl_principal;
use super::{Check, Status};
use crate::cluster::membership_config;
use crate::config::Config;
use crate::sink::access::principal;
use crate::sink::describe::{Found, TopicDescription};
use crate::sink::kafka::producer_config;
use crate::sink::transaction::transactional_id;

/// The source-name part of the transactional id doctor initialises: never a source's own
/// (initialising a source's id would fence its running writer).
const DOCTOR_TRANSACTION: &str = "paybridge-doctor";

/// Every Kafka check of `config`.
pub async fn checks(config: &Config) -> Vec<Check> {
    let kafka = &config.kafka;
    let timeout = kafka.metadata_timeout.get();
    let reach = reachable(kafka, timeout).await;
    let unreachable = reach.status == Status::Fail;
    let mut checks = vec![reach];
    if unreachable {
        checks.push(Check::skip("kafka: TLS, authentication, topics, access", "the brokers are unreachable"));
        return checks;
    }
    let (connection, connected) = secured(kafka, timeout).await;
    checks.extend(connection);
    let Some(connected) = connected else {
        checks.push(Check::skip("kafka: topics, access", "not connected"));
        return checks;
    };
    let (topics, described) = super::topics::checks(config, connected.brokers).await;
    checks.extend(topics);
    checks.push(producer(config, timeout).await);
    if let Some(transactional) = transactional(config, timeout).await {
        checks.push(transactional);
    }
    if let Some(group) = group(config, &described).await {
        checks.push(group);
    }
    checks
}

fn has_cursor_sources(config: &Config) -> bool {
    config.sources.iter().any(|s| s.provider() == crate::event::Provider::PaymentsDirect)
}

/// The idempotent producer every source publishes with gets its producer id.
async fn producer(config: &Config, timeout: Duration) -> Check {
    let name = "kafka: idempotent producer";
    let producer = producer_config(&config.kafka);
    let who = principal(&config.kafka);
    match run_blocking(move || idempotent_init(&producer, timeout)).await {
        Init::Done => Check::pass(name, format!("{who} got a producer id (acks=all, idempotent)")),
        Init::Refused(reason) => Check::fail(
            name,
            format!("{who} was refused a producer id: {reason}"),
            format!(
                "grant {} Write on the events topic (Kafka 3.0 and later give idempotent producers that need no \
                 more) or IdempotentWrite on the cluster (older brokers)",
                acl_principal(&who)
            ),
        ),
        Init::TimedOut(heard) => Check::fail(
            name,
            no_answer("no producer id", timeout, heard),
            "the brokers answered metadata but not InitProducerId: check the transaction coordinator \
             (__transaction_state needs min.insync.replicas of its replicas in sync) and raise kafka.metadata_timeout",
        ),
    }
}

/// In exactly-once mode with cursor sources, a transactional producer is initialised under
/// the configured prefix (its own id: the sources' writers are not fenced).
async fn transactional(config: &Config, timeout: Duration) -> Option<Check> {
    let kafka = &config.kafka;
    if !(kafka.exactly_once && has_cursor_sources(config)) {
        return None;
    }
    let prefix = kafka.transactional_prefix();
    let part = if config.sources.iter().any(|s| s.name() == DOCTOR_TRANSACTION) {
        format!("{DOCTOR_TRANSACTION}-check")
    } else {
        DOCTOR_TRANSACTION.to_owned()
    };
    let id = transactional_id(&prefix, &part);
    let mut producer = producer_config(kafka);
    producer.set("transactional.id", &id);
    let who = principal(kafka);
    let name = "kafka: transactional producer (exactly_once)";
    Some(match run_blocking(move || transactional_init(&producer, timeout)).await {
        Init::Done => {
            Check::pass(name, format!("{who} initialised transactional id {}", transactional_id(&prefix, &part)))
        }
        Init::Refused(reason) => Check::fail(
            name,
            format!("{who} may not initialise transactional id {}: {reason}", transactional_id(&prefix, &part)),
            format!(
                "kafka-acls.sh --bootstrap-server <admin> --add --allow-principal {} --operation Write --operation \
                 Describe --transactional-id {prefix}- --resource-pattern-type prefixed",
                acl_principal(&who)
            ),
        ),
        Init::TimedOut(heard) => Check::fail(
            name,
            no_answer("no answer", timeout, heard),
            "check the transaction coordinator (__transaction_state) and raise kafka.metadata_timeout",
        ),
    })
}

/// With `[cluster]`, a member joins the replicas' group (one rebalance, as a starting
/// replica causes) and leaves it.
async fn group(config: &Config, described: &[TopicDescription]) -> Option<Check> {
    let cluster = config.cluster.as_ref()?;
    let (consumer, group) = membership_config(cluster, &config.kafka);
    let name = format!("kafka: group {group} ([cluster])");
    let visible = described.iter().any(|d| d.name == cluster.topic && matches!(d.found, Found::Visible { .. }));
    if !visible {
        return Some(Check::skip(name, format!("the coordination topic {} is not usable (above)", cluster.topic)));
    }
    let who = principal(&config.kafka);
    let topic = cluster.topic.clone();
    // A new group's first join waits the broker's group.initial.rebalance.delay.ms (3 s).
    let timeout = config.kafka.startup_timeout.get().max(Duration::from_secs(10));
    Some(match run_blocking(move || join_group(&consumer, &topic, timeout)).await {
        Init::Done => Check::pass(name, format!("{who} joined the group and left it")),
        Init::Refused(reason) => Check::fail(
            name,
            format!("{who} may not join group {group}: {reason}"),
            format!(
                "kafka-acls.sh --bootstrap-server <admin> --add --allow-principal {} --operation Read --group {group} \
                 (Read implies Describe)",
                acl_principal(&who)
            ),
        ),
        Init::TimedOut(heard) => Check::fail(
            name,
            no_answer("not assigned", timeout, heard),
            "check the group coordinator (__consumer_offsets) and cluster.group_protocol",
        ),
    })
}

async fn run_blocking(probe: impl FnOnce() -> Init + Send + 'static) -> Init {
    tokio::task::spawn_blocking(probe).await.unwrap_or_else(|e| Init::Refused(format!("the probe failed: {e}")))
}

/// "`what` within `timeout`", with the last thing librdkafka said.
fn no_answer(what: &str, timeout: Duration, heard: Option<String>) -> String {
    let heard = heard.map(|h| format!(" (librdkafka: {h})")).unwrap_or_default();
    format!("{what} within {}{heard}", humantime::format_duration(timeout))
}
