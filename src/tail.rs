//! `paybridge tail`: reads the events topic with a plain consumer and prints one line per
//! event, for operators (and the demo). It assigns every partition itself (no consumer
//! group membership, no offset commits), so it never disturbs real consumers.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;
use crate::sink::kafka::consumer_config;

/// How each event is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One aligned line: time, provider, payment, state change, type, id.
    Pretty,
    /// The record value as it is (one CloudEvent JSON object per line).
    Json,
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

/// Prints the events of `kafka.topic` to `out` until `stop` is cancelled: every partition
/// from its start with `from_beginning`, else only what arrives from now on.
pub async fn tail(
    kafka: &KafkaConfig,
    from_beginning: bool,
    format: Format,
    out: &mut impl Write,
    stop: &CancellationToken,
) -> Result<Summary, TailError> {
    let topic = kafka.topic.clone();
    let group = format!("paybridge-tail-{}", uuid::Uuid::new_v4());
    let read = |source| TailError::Read { topic: topic.clone(), source };
    let consumer: StreamConsumer = consumer_config(kafka, &group).create().map_err(read)?;
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
            // The broker went away for a moment: librdkafka reconnects; say so and go on.
            Err(e) => {
                tracing::warn!(error = %e, "reading the topic");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Values in the Confluent wire format (kafka.schema_registry.wire_format) are read too.
        let (_, value) = crate::registry::wire::split(message.payload().unwrap_or_default());
        let text = match serde_json::from_slice::<CanonicalEvent>(value) {
            Ok(event) => {
                *summary.per_provider.entry(event.data.provider.as_str().to_owned()).or_default() += 1;
                match format {
                    Format::Pretty => line(&event),
                    Format::Json => String::from_utf8_lossy(value).into_owned(),
                }
            }
            Err(e) => {
                summary.unreadable += 1;
                format!("partition {} offset {}: not a paybridge event ({e})", message.partition(), message.offset())
            }
        };
        match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader went away (`paybridge tail | head`): stop quietly, as Unix tools do.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(summary),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One event as one line: time, provider, account, payment, state change, type, id.
pub fn line(event: &CanonicalEvent) -> String {
    let data = &event.data;
    let change = match &data.previous_provider_state {
        Some(previous) => format!("{previous} → {}", data.provider_state),
        None => data.provider_state.clone(),
    };
    let terminal = if data.terminal { " (final)" } else { "" };
    format!(
        "{}  {:<15} {:<12} {:<38} {}{terminal}  [{}]  {}",
        event.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        data.provider.as_str(),
        data.account,
        data.payment_id,
        change,
        data.notification_type.as_deref().unwrap_or(event.event_type.as_str()),
        event.id
    )
}
