//! Each topic paybridge needs: visible to its principal, what the principal may do on it,
//! and whether its replication, in-sync minimum, elections and retention can give the
//! guarantee.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Check;
use crate::config::Config;
use crate::sink::access::{Need, denials, needs, principal};
use crate::sink::describe::{Found, TopicDescription};
use crate::sink::durability;
use crate::sink::topics::{TopicSpec, describe, required_topics, topic_configs};

/// A day: shorter retention on the events topic loses events to a consumer stopped over a weekend night.
const SHORT_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// The checks of every topic the configured mode needs; `brokers` is the cluster's size
/// (a cluster of fewer than three brokers cannot give a durable topic: a warning there).
pub async fn checks(config: &Config, brokers: usize) -> (Vec<Check>, Vec<TopicDescription>) {
    let kafka = &config.kafka;
    let timeout = kafka.metadata_timeout.get();
    let with_state = config.sources.iter().any(|s| s.provider() == crate::event::Provider::PaymentsDirect);
    let wanted = required_topics(kafka, with_state, config.cluster.as_ref());
    let needs = needs(kafka, with_state, config.cluster.as_ref().map(|c| c.topic.as_str()));
    let described = match describe(kafka, &wanted, timeout).await {
        Ok(described) => described,
        Err(e) => {
            return (vec![Check::fail("kafka: topics", e.to_string(), "see the connection checks above")], Vec::new());
        }
    };
    let written: Vec<&str> = described
        .iter()
        .filter(|d| matches!(d.found, Found::Visible { .. }))
        .filter(|d| needs.iter().any(|n| n.topic == d.name && n.written()))
        .map(|d| d.name.as_str())
        .collect();
    let configs: BTreeMap<String, Result<BTreeMap<String, String>, String>> =
        match topic_configs(kafka, &written, timeout).await {
            Ok(configs) => written.iter().map(|t| (*t).to_owned()).zip(configs).collect(),
            Err(e) => written.iter().map(|t| ((*t).to_owned(), Err(e.to_string()))).collect(),
        };
    let judge = Judge { config, brokers, who: principal(kafka) };
    let mut checks = Vec::new();
    for spec in &wanted {
        let Some(need) = needs.iter().find(|n| n.topic == spec.name) else { continue };
        let Some(description) = described.iter().find(|d| d.name == spec.name) else { continue };
        checks.extend(judge.topic(spec, need, description, configs.get(&spec.name)));
    }
    (checks, described)
}

struct Judge<'a> {
    config: &'a Config,
    brokers: usize,
    who: String,
}

impl Judge<'_> {
    fn topic(
        &self,
        spec: &TopicSpec,
        need: &Need,
        description: &TopicDescription,
        config: Option<&Result<BTreeMap<String, String>, String>>,
    ) -> Vec<Check> {
        let name = format!("topic {} ({})", spec.name, need.role);
        let (partitions, replication_factor) = match &description.found {
            Found::Visible { partitions, replication_factor, .. } => (*partitions, *replication_factor),
            Found::Missing if self.config.kafka.create_topics => {
                return vec![Check::warn(
                    name,
                    "missing: paybridge creates it at start (kafka.create_topics = true)",
                    format!(
                        "{} needs Create on the topic or the cluster for that; or create it yourself, with replication \
                         factor 3 and min.insync.replicas=2",
                        self.who
                    ),
                )];
            }
            Found::Missing => return vec![Check::fail(name, "missing", create_hint(spec))],
            Found::NotVisible => {
                return vec![Check::fail(
                    name,
                    format!("missing or not visible to {} (Describe)", self.who),
                    format!(
                        "Kafka hides a topic the principal may not Describe: grant {} Describe on topic {} and the \
                         other ACLs of its mode (docs: Connecting to Kafka)",
                        acl_principal(&self.who),
                        spec.name
                    ),
                )];
            }
            Found::Failed(reason) => {
                return vec![Check::fail(name, reason.clone(), "see Kafka's error; the topic's leader may be offline")];
            }
        };
        let mut checks = vec![match (need.written(), config) {
            (false, _) => Check::pass(name, format!("{partitions} partitions (nothing is written to it)")),
            (true, Some(Ok(settings))) => self.durability(&name, spec, need, partitions, replication_factor, settings),
            (true, Some(Err(reason))) => Check::warn(
                name,
                format!(
                    "{partitions} partitions, replication factor {replication_factor}; its configuration is unreadable: {reason}"
                ),
                "grant DescribeConfigs on the topic (paybridge reads its limits and durability at start)",
            ),
            (true, None) => Check::warn(name, "its configuration was not read", "run doctor again"),
        }];
        checks.push(self.access(spec, need, description));
        checks
    }

    fn durability(
        &self,
        name: &str,
        spec: &TopicSpec,
        need: &Need,
        partitions: usize,
        replication_factor: usize,
        settings: &BTreeMap<String, String>,
    ) -> Check {
        let read = durability::from_config(&spec.name, replication_factor, settings);
        let retention = settings.get("retention.ms").and_then(|v| v.parse::<i64>().ok());
        let policy = settings.get("cleanup.policy").map_or("delete", String::as_str);
        let detail = format!(
            "{partitions} partitions, replication factor {replication_factor}, min.insync.replicas={}, unclean leader \
             election {}, cleanup.policy={policy}, retention {}",
            read.min_insync_replicas.map_or("unknown".into(), |n| n.to_string()),
            match read.unclean_leader_election {
                Some(true) => "on",
                Some(false) => "off",
                None => "unknown",
            },
            retention_text(retention),
        );
        if spec.compacted && !policy.contains("compact") {
            return Check::fail(
                name,
                format!("{detail}: the state topic is not compacted, so positions expire with its retention"),
                format!(
                    "kafka-configs.sh --alter --entity-type topics --entity-name {} --add-config cleanup.policy=compact",
                    spec.name
                ),
            );
        }
        let weaknesses = read.weaknesses();
        if !weaknesses.is_empty() {
            let fix = format!(
                "give the topic replication factor 3 (kafka-reassign-partitions.sh) and kafka-configs.sh --alter \
                 --entity-type topics --entity-name {} --add-config min.insync.replicas=2,unclean.leader.election.enable=false \
                 (docs: Guarantees, durability)",
                spec.name
            );
            let detail = format!("{detail}: {}", weaknesses.join(", "));
            if self.brokers < durability::MIN_REPLICATION_FACTOR && !self.config.kafka.require_durable_topics {
                return Check::warn(
                    name,
                    format!("{detail}; a {}-broker cluster cannot do better: for development only", self.brokers),
                    fix,
                );
            }
            return Check::fail(name, format!("{detail}: a confirmed event may be lost with one broker"), fix);
        }
        if need.role == "events"
            && policy == "delete"
            && retention.is_some_and(|ms| (0..SHORT_RETENTION_MS).contains(&ms))
        {
            return Check::warn(
                name,
                format!("{detail}: a consumer stopped for longer than that misses events"),
                format!(
                    "kafka-configs.sh --alter --entity-type topics --entity-name {} --add-config retention.ms=604800000 \
                     (or what your consumers' longest outage needs)",
                    spec.name
                ),
            );
        }
        Check::pass(name, detail)
    }

    fn access(&self, spec: &TopicSpec, need: &Need, description: &TopicDescription) -> Check {
        let name = format!("access to {} ({})", spec.name, need.role);
        let wanted: Vec<&str> = need.operations.iter().map(|o| o.as_str()).collect();
        if let Found::Visible { operations: None, .. } = description.found {
            return Check::warn(
                name,
                "the broker does not tell a principal's operations (older than Kafka 2.3)",
                format!("make sure {} may {} on it; the first publish would tell", self.who, wanted.join(", ")),
            );
        }
        let denied = denials(std::slice::from_ref(need), std::slice::from_ref(description));
        if denied.is_empty() {
            return Check::pass(name, format!("{} may {}", self.who, wanted.join(", ")));
        }
        let missing: Vec<&str> = denied.iter().map(|d| d.operation.as_str()).collect();
        let flags: String = missing.iter().map(|op| format!(" --operation {op}")).collect();
        Check::fail(
            name,
            format!("{} may not {}", self.who, missing.join(", ")),
            format!(
                "kafka-acls.sh --bootstrap-server <admin> --add --allow-principal {}{flags} --topic {}",
                acl_principal(&self.who),
                spec.name
            ),
        )
    }
}

/// The principal as kafka-acls.sh takes it (`User:name`), or a placeholder naming it.
pub fn acl_principal(who: &str) -> String {
    match who.split_once(' ') {
        Some((user, _)) if user.starts_with("User:") => user.to_owned(),
        _ if who.starts_with("User:") => who.to_owned(),
        _ => format!("'User:<{who}>'"),
    }
}

fn create_hint(spec: &TopicSpec) -> String {
    let partitions = spec.partitions.map_or("<kafka.topic_partitions>".to_owned(), |p| p.to_string());
    let compact = if spec.compacted { " --config cleanup.policy=compact" } else { "" };
    format!(
        "kafka-topics.sh --create --topic {} --partitions {partitions} --replication-factor 3 --config \
         min.insync.replicas=2{compact}, or set kafka.create_topics = true",
        spec.name
    )
}

fn retention_text(retention_ms: Option<i64>) -> String {
    match retention_ms {
        Some(ms) if ms < 0 => "unlimited".into(),
        Some(ms) => humantime::format_duration(Duration::from_millis(ms.unsigned_abs())).to_string(),
        None => "unknown".into(),
    }
}
