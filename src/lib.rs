//! paybridge: moves payment-provider notifications into Kafka. Nothing is acknowledged
//! upstream before the broker has confirmed the event.

pub mod ack;
pub mod admin;
pub mod config;
pub mod event;
pub mod health;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod schemas;
pub mod sink;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Topics(#[from] sink::topics::TopicError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("source {name:?} (kind {kind}) is configured, but this build does not implement that provider yet")]
    UnsupportedSource { name: String, kind: event::Provider },
}

/// How often the broker's metadata is checked for /readyz.
const BROKER_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the bridge until `shutdown` is cancelled: checks (or creates) the topics, starts
/// the producer, the pipeline, the admin server and the sources; on shutdown drains what
/// is in flight and flushes the producer, all within `shutdown.timeout`.
pub async fn run(config: config::Config, shutdown: CancellationToken) -> Result<(), RunError> {
    if let Some(source) = config.sources.first() {
        return Err(RunError::UnsupportedSource { name: source.name().to_owned(), kind: source.provider() });
    }
    let has_cursor_sources = config.sources.iter().any(|s| s.provider() == event::Provider::PaymentsDirect);
    let topics = sink::topics::required_topics(&config.kafka, has_cursor_sources);
    sink::topics::ensure_topics(&config.kafka, &topics, config.kafka.metadata_timeout.get()).await?;
    let sink = sink::kafka::KafkaSink::new(&config.kafka)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let health = Arc::new(health::Health::new());
    health.broker_reachable();
    let pipeline = pipeline::Pipeline::start(
        sink.clone(),
        pipeline::PipelineSettings {
            capacity: config.pipeline.capacity,
            delivery_deadline: config.kafka.delivery_timeout.get(),
        },
        metrics.clone(),
    );

    let admin_addr = config.admin.listen.0;
    let listener = tokio::net::TcpListener::bind(admin_addr).await.map_err(|source| RunError::Bind {
        what: "admin.listen",
        addr: admin_addr,
        source,
    })?;
    let stop_admin = CancellationToken::new();
    let admin_state =
        admin::AdminState { metrics: metrics.clone(), health: health.clone(), submitter: pipeline.submitter() };
    let admin = tokio::spawn(admin::serve(listener, admin_state, stop_admin.clone()));
    let checker = tokio::spawn(check_broker(sink.clone(), health.clone(), shutdown.clone()));
    tracing::info!(topic = sink.topic(), admin = %admin_addr, sources = config.sources.len(), "paybridge started");

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    health.set_shutting_down();
    // One deadline for everything: draining the pipeline, then flushing the producers.
    let deadline = tokio::time::Instant::now() + config.shutdown.timeout.get();
    pipeline.shutdown(config.shutdown.timeout.get()).await;
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    match tokio::task::spawn_blocking(move || sink.flush(remaining)).await {
        Ok(Ok(())) => tracing::info!("producer flushed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "producer not fully flushed before the deadline"),
        Err(e) => tracing::warn!(error = %e, "flush task failed"),
    }
    stop_admin.cancel();
    checker.abort();
    let _ = admin.await;
    Ok(())
}

/// Marks the broker reachable in `health` whenever it answers a metadata request.
async fn check_broker(sink: sink::kafka::KafkaSink, health: Arc<health::Health>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = sink.clone();
        let reachable =
            tokio::task::spawn_blocking(move || probe.metadata_reachable(BROKER_CHECK_INTERVAL)).await.unwrap_or(false);
        if reachable {
            health.broker_reachable();
        } else {
            tracing::warn!("Kafka brokers did not answer a metadata request");
        }
    }
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
