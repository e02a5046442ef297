//! Whether a topic can give the durability paybridge's guarantee rests on. `acks=all` means
//! "every in-sync replica has the record", and Kafka lets the in-sync set shrink to
//! `min.insync.replicas`: on a topic with one replica, or with `min.insync.replicas=1`, a
//! confirmation is one broker's word, and a lost disk loses an event whose notification was
//! already acknowledged upstream. Unclean leader election lets an out-of-sync replica lead
//! and drop confirmed records. Weak topics are reported at every start; with
//! `kafka.require_durable_topics` they stop it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::KafkaConfig;

use super::describe::{Found, TopicDescription};
use super::topics::topic_configs;

/// The replication factor a durable topic has at least.
pub const MIN_REPLICATION_FACTOR: usize = 3;
/// The `min.insync.replicas` a durable topic has at least.
pub const MIN_INSYNC_REPLICAS: u32 = 2;

/// One topic's durability settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    pub topic: String,
    pub replication_factor: usize,
    pub min_insync_replicas: Option<u32>,
    pub unclean_leader_election: Option<bool>,
}

impl Durability {
    /// What falls short of the guarantee, one phrase each (empty: durable).
    pub fn weaknesses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.replication_factor < MIN_REPLICATION_FACTOR {
            out.push(format!("replication factor {} (at least {MIN_REPLICATION_FACTOR})", self.replication_factor));
        }
        match self.min_insync_replicas {
            Some(n) if n < MIN_INSYNC_REPLICAS => {
                out.push(format!("min.insync.replicas={n} (at least {MIN_INSYNC_REPLICAS})"));
            }
            None => out.push("min.insync.replicas unknown".into()),
            Some(_) => {}
        }
        match self.unclean_leader_election {
            Some(true) => out.push(
                "unclean.leader.election.enable=true (an out-of-sync replica may lead and drop confirmed events)"
                    .into(),
            ),
            None => out.push("unclean.leader.election.enable unknown".into()),
            Some(false) => {}
        }
        out
    }
}

/// A topic's durability from its replication factor and its configuration (each key with a
/// value, as DescribeConfigs gives it).
pub fn from_config(topic: &str, replication_factor: usize, config: &BTreeMap<String, String>) -> Durability {
    Durability {
        topic: topic.to_owned(),
        replication_factor,
        min_insync_replicas: config.get("min.insync.replicas").and_then(|v| v.parse().ok()),
        unclean_leader_election: config.get("unclean.leader.election.enable").and_then(|v| v.parse().ok()),
    }
}

/// The durability settings of the topics `described` shows visible: the replication factor
/// from their description, the rest from their configuration (one DescribeConfigs request).
/// Settings that cannot be read (a service that does not report them) are unknown, with a
/// warning naming the reason: never a reason to stop by themselves.
pub async fn read(kafka: &KafkaConfig, described: &[TopicDescription], timeout: Duration) -> Vec<Durability> {
    let visible: Vec<(&str, usize)> = described
        .iter()
        .filter_map(|d| match d.found {
            Found::Visible { replication_factor, .. } => Some((d.name.as_str(), replication_factor)),
            _ => None,
        })
        .collect();
    let unknown = |(topic, replication_factor): &(&str, usize)| Durability {
        topic: (*topic).to_owned(),
        replication_factor: *replication_factor,
        min_insync_replicas: None,
        unclean_leader_election: None,
    };
    let configs = match describe_configs(kafka, &visible, timeout).await {
        Ok(configs) => configs,
        Err(reason) => {
            tracing::warn!(%reason, "cannot read the topics' configuration; their durability settings are unknown");
            return visible.iter().map(unknown).collect();
        }
    };
    visible
        .iter()
        .zip(configs)
        .map(|(topic, config)| match config {
            Ok((min_insync_replicas, unclean_leader_election)) => Durability {
                topic: topic.0.to_owned(),
                replication_factor: topic.1,
                min_insync_replicas,
                unclean_leader_election,
            },
            Err(reason) => {
                tracing::warn!(topic = topic.0, %reason, "cannot read the topic's configuration; its durability settings are unknown");
                unknown(topic)
            }
        })
        .collect()
}

/// Each topic's (`min.insync.replicas`, `unclean.leader.election.enable`), or why not.
type Settings = Result<(Option<u32>, Option<bool>), String>;

async fn describe_configs(
    kafka: &KafkaConfig,
    topics: &[(&str, usize)],
    timeout: Duration,
) -> Result<Vec<Settings>, String> {
    let names: Vec<&str> = topics.iter().map(|(t, _)| *t).collect();
    let configs = topic_configs(kafka, &names, timeout).await.map_err(|e| e.to_string())?;
    Ok(configs
        .into_iter()
        .map(|config| {
            let config = config?;
            let read = from_config("", 0, &config);
            Ok((read.min_insync_replicas, read.unclean_leader_election))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(replication_factor: usize, min_isr: Option<u32>, unclean: Option<bool>) -> Durability {
        Durability {
            topic: "events".into(),
            replication_factor,
            min_insync_replicas: min_isr,
            unclean_leader_election: unclean,
        }
    }

    #[test]
    fn three_replicas_two_in_sync_and_clean_elections_are_durable() {
        assert!(topic(3, Some(2), Some(false)).weaknesses().is_empty());
        assert!(topic(5, Some(3), Some(false)).weaknesses().is_empty());
    }

    #[test]
    fn each_shortfall_is_named_with_its_value() {
        let single = topic(1, Some(1), Some(false)).weaknesses();
        assert_eq!(single.len(), 2, "{single:?}");
        assert!(single[0].contains("replication factor 1") && single[1].contains("min.insync.replicas=1"));
        let one_in_sync = topic(3, Some(1), Some(false)).weaknesses();
        assert_eq!(one_in_sync, ["min.insync.replicas=1 (at least 2)"]);
        let unclean = topic(3, Some(2), Some(true)).weaknesses();
        assert!(unclean[0].starts_with("unclean.leader.election.enable=true"));
        assert_eq!(topic(3, None, None).weaknesses().len(), 2, "unknown settings are not taken for durable");
    }
}
