//! `paybridge tail`: reads the events topic with a plain consumer and prints one line per
//! event, for operators (and the demo). It assigns every partition itself (no consumer
//! group membership, no offset commits), so it never disturbs real consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};

use crate::sink::reader::{ReaderContext, is_group_lookup};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;
use crate::sink::kafka::consumer_config;

/// One record of the topic as `tail` read it.
pub enum Record<'a> {
    /// A paybridge event, and the record's value as it is (the JSON, without a wire-format
    /// header).
    Event { event: &'a CanonicalEvent, value: &'a [u8] },
    /// A record that is not a paybridge event, and why.
    Unreadable { partition: i32, offset: i64, error: String },
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot read the metadata of {topic} from {servers}: {source}")]
    Metadata { topic: String, servers: String, source: KafkaError },
    #[error("topic {0} does not exist (paybridge run creates it with kafka.create_topics = true)")]
    NoTopic(String),
    #[error("cannot read {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// What a tail printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events per provider.
    pub per_provider: BTreeMap<String, u64>,
    /// Records that are not paybridge events.
    pub unreadable: u64,
}

impl Summary {
    pub fn events(&self) -> u64 {
        self.per_provider.values().sum()
    }
}

/// Hands every record of `kafka.topic` to `show` until `stop` is cancelled: every partition
/// from its start with `from_beginning`, else only what arrives from now on. An error of
/// `show` ends the tail with [`TailError::Output`], except a broken pipe (the reader went
/// away, as in `paybridge tail | head`), which ends it quietly.
pub async fn tail(
    kafka: &KafkaConfig,
    from_beginning: bool,
    stop: &CancellationToken,
    mut show: impl FnMut(Record<'_>) -> std::io::Result<()>,
) -> Result<Summary, TailError> {
    let topic = kafka.topic.clone();
    let group = format!("paybridge-tail-{}", uuid::Uuid::new_v4());
    let read = |source| TailError::Read { topic: topic.clone(), source };
    let consumer: StreamConsumer<ReaderContext> =
        consumer_config(kafka, &group).create_with_context(ReaderContext).map_err(read)?;
    let metadata = consumer.fetch_metadata(Some(&topic), kafka.metadata_timeout.get()).map_err(|source| {
        TailError::Metadata { topic: topic.clone(), servers: kafka.bootstrap_servers.clone(), source }
    })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(TailError::NoTopic(topic));
    }
    let start = if from_beginning { Offset::Beginning } else { Offset::End };
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(&topic, p, start).map_err(read)?;
    }
    consumer.assign(&assignment).map_err(read)?;
    let mut summary = Summary::default();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return Ok(summary),
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            // The throw-away group's coordinator: tail needs no group (see sink::reader).
            Err(e) if is_group_lookup(&e) => continue,
            // The broker went away for a moment: librdkafka reconnects; say so and go on.
            Err(e) => {
                tracing::warn!(error = %e, "reading the topic");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Values in the Confluent wire format (kafka.schema_registry.wire_format) are read too.
        let (_, value) = crate::sink::wire::split(message.payload().unwrap_or_default());
        let shown = match serde_json::from_slice::<CanonicalEvent>(value) {
            Ok(event) => {
                *summary.per_provider.entry(event.data.provider.as_str().to_owned()).or_default() += 1;
                show(Record::Event { event: &event, value })
            }
            Err(e) => {
                summary.unreadable += 1;
                show(Record::Unreadable {
                    partition: message.partition(),
                    offset: message.offset(),
                    error: e.to_string(),
                })
            }
        };
        match shown {
            Ok(()) => {}
            // The reader went away (`paybridge tail | head`): stop quietly, as Unix tools do.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(summary),
            Err(e) => return Err(e.into()),
        }
    }
}
