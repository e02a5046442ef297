//! `[cluster]`: several replicas share the sources through Kafka's consumer-group
//! membership. Absent, the process is the only replica and runs every task.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Turns group membership on: work the provider hands to one reader (NEW polls, receives,
/// webhooks) runs on every replica; singleton tasks (a Payments Direct cursor cycle, a
/// RippleNet SENT sweeper) run on the one replica the group assigns them to.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The consumer group the replicas join; default `<client.id>-cluster` (`client.id`
    /// from `kafka.properties`, else `paybridge`). Every replica of one deployment uses
    /// the same group and the same sources.
    #[serde(default)]
    #[schemars(length(min = 1, max = 249))]
    pub group_id: Option<String>,
    /// The consumer-group protocol: `classic` (JoinGroup/SyncGroup, every Kafka-compatible
    /// broker) or `consumer` (KIP-848, Apache Kafka 4.0 and later: the broker assigns the
    /// partitions and rebalances incrementally, without stopping the group).
    #[serde(default)]
    pub group_protocol: GroupProtocol,
    /// `classic`: a replica that has not sent a heartbeat for this long is out of the
    /// group, and its singleton tasks move to another replica (the broker's
    /// group.min/max.session.timeout.ms bound it, by default 6 s to 30 min). `consumer`: the
    /// broker decides (`group.consumer.session.timeout.ms`, 45 s by default, or the group's
    /// own `consumer.session.timeout.ms`), and this setting is not sent.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: HumanDuration,
    /// The coordination topic: each singleton task maps to one of its partitions (by a hash
    /// of its name), and owning the partition means running the task. Nothing is written to
    /// it. Created with `cluster.partitions` partitions when `kafka.create_topics` is set.
    #[serde(default = "default_cluster_topic")]
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Partitions of the coordination topic when paybridge creates it. More partitions than
    /// singleton tasks spreads the tasks over the replicas; the count of an existing topic
    /// is read from the broker, never assumed.
    #[serde(default = "default_cluster_partitions")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,
    /// How long a replica that is giving a task away gets to settle and commit what is in
    /// flight before the task is released (the new owner starts after that, or after this
    /// bound, whichever comes first).
    #[serde(default = "default_handover_timeout")]
    pub handover_timeout: HumanDuration,
}

/// The consumer-group protocol of `[cluster]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with cooperative-sticky assignment (every broker).
    #[default]
    Classic,
    /// KIP-848's broker-side assignment (Apache Kafka 4.0 and later).
    Consumer,
}

impl GroupProtocol {
    /// librdkafka's `group.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

impl ClusterConfig {
    /// The group id: `group_id`, else derived from the Kafka client id.
    pub fn group(&self, client_id: Option<&str>) -> String {
        match &self.group_id {
            Some(group) => group.clone(),
            None => format!("{}-cluster", client_id.filter(|c| !c.trim().is_empty()).unwrap_or("paybridge")),
        }
    }
}

const fn default_session_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_cluster_topic() -> String {
    "paybridge.cluster".to_owned()
}

const fn default_cluster_partitions() -> i32 {
    12
}

const fn default_handover_timeout() -> HumanDuration {
    HumanDuration::from_secs(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> ClusterConfig {
        serde_json::from_str("{}").unwrap()
    }

    #[test]
    fn an_empty_section_takes_the_defaults() {
        let c = minimal();
        assert_eq!(c.session_timeout.get(), std::time::Duration::from_secs(10));
        assert_eq!(c.topic, "paybridge.cluster");
        assert_eq!(c.partitions, 12);
        assert_eq!(c.handover_timeout.get(), std::time::Duration::from_secs(20));
    }

    #[test]
    fn the_group_is_derived_from_the_client_id_unless_given() {
        let mut c = minimal();
        assert_eq!(c.group(None), "paybridge-cluster");
        assert_eq!(c.group(Some("payments-eu")), "payments-eu-cluster");
        assert_eq!(c.group(Some("  ")), "paybridge-cluster");
        c.group_id = Some("bridges".into());
        assert_eq!(c.group(Some("payments-eu")), "bridges");
    }
}
