//! paybridge: moves payment-provider notifications into Kafka. Nothing is acknowledged
//! upstream before the broker has confirmed the event.

pub mod config;
pub mod event;
pub mod schemas;
pub mod sink;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Topics(#[from] sink::topics::TopicError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error(
        "source {name:?} (kind {kind}) is configured, but this build does not implement that provider yet"
    )]
    UnsupportedSource { name: String, kind: event::Provider },
}

/// How long start-up waits for the brokers' metadata.
const STARTUP_METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How long shutdown waits for queued records.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(25);

/// Runs the bridge until `shutdown` is cancelled: checks (or creates) the topics, starts
/// the producer and the sources, and on shutdown flushes what is in flight.
pub async fn run(config: config::Config, shutdown: CancellationToken) -> Result<(), RunError> {
    if let Some(source) = config.sources.first() {
        return Err(RunError::UnsupportedSource { name: source.name().to_owned(), kind: source.provider() });
    }
    sink::topics::ensure_topics(&config.kafka, STARTUP_METADATA_TIMEOUT).await?;
    let sink = sink::kafka::KafkaSink::new(&config.kafka)?;
    tracing::info!(topic = sink.topic(), sources = config.sources.len(), "paybridge started");
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let flush = sink.clone();
    let _ = tokio::task::spawn_blocking(move || flush.flush(SHUTDOWN_FLUSH_TIMEOUT)).await;
    Ok(())
}

/// [`run`] until SIGTERM or SIGINT.
pub async fn run_until_signal(config: config::Config) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    run(config, shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
