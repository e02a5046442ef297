//! The running bridge: broker check, producer, pipeline, admin server, (sources), and the
//! ordered shutdown. `paybridge run` and the tests drive the same code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event::Provider;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineSettings, Submitter};
use crate::sink::kafka::KafkaSink;
use crate::{RunError, admin, sink};

/// How often the broker's metadata is checked for /readyz.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// A started bridge.
pub struct Bridge {
    config: Config,
    sink: KafkaSink,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    admin_addr: SocketAddr,
    stop_background: CancellationToken,
    admin: JoinHandle<std::io::Result<()>>,
    checker: JoinHandle<()>,
}

impl Bridge {
    /// Checks (or creates) the topics, starts the producer, the pipeline and the admin server.
    pub async fn start(config: Config) -> Result<Self, RunError> {
        if let Some(source) = config.sources.first() {
            return Err(RunError::UnsupportedSource { name: source.name().to_owned(), kind: source.provider() });
        }
        let has_cursor_sources = config.sources.iter().any(|s| s.provider() == Provider::PaymentsDirect);
        let topics = sink::topics::required_topics(&config.kafka, has_cursor_sources);
        sink::topics::ensure_topics(&config.kafka, &topics, config.kafka.metadata_timeout.get()).await?;
        let sink = KafkaSink::new(&config.kafka)?;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new());
        health.broker_reachable();
        let settings = PipelineSettings {
            capacity: config.pipeline.capacity,
            delivery_deadline: config.kafka.delivery_timeout.get(),
        };
        let pipeline = Pipeline::start(sink.clone(), settings, metrics.clone());

        let wanted = config.admin.listen.0;
        let listener = tokio::net::TcpListener::bind(wanted).await.map_err(|source| RunError::Bind {
            what: "admin.listen",
            addr: wanted,
            source,
        })?;
        let admin_addr = listener.local_addr().unwrap_or(wanted);
        let stop_background = CancellationToken::new();
        let state =
            admin::AdminState { metrics: metrics.clone(), health: health.clone(), submitter: pipeline.submitter() };
        let admin = tokio::spawn(admin::serve(listener, state, stop_background.clone()));
        let checker = tokio::spawn(check_broker(sink.clone(), health.clone(), stop_background.clone()));
        tracing::info!(topic = sink.topic(), admin = %admin_addr, sources = config.sources.len(), "paybridge started");
        Ok(Self { config, sink, pipeline, metrics, health, admin_addr, stop_background, admin, checker })
    }

    pub fn submitter(&self) -> Submitter {
        self.pipeline.submitter()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Where the admin server listens (useful with port 0).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Ordered shutdown within `shutdown.timeout`: readiness off, the pipeline takes no more
    /// batches and drains (what is not confirmed in time resolves Retry), the producer
    /// flushes in the remaining time, then the admin server stops.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.health.set_shutting_down();
        let timeout = self.config.shutdown.timeout.get();
        let deadline = tokio::time::Instant::now() + timeout;
        self.pipeline.shutdown(timeout).await;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let sink = self.sink;
        match tokio::task::spawn_blocking(move || sink.flush(remaining)).await {
            Ok(Ok(())) => tracing::info!("producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "producer not fully flushed before the deadline"),
            Err(e) => tracing::warn!(error = %e, "flush task failed"),
        }
        self.stop_background.cancel();
        self.checker.abort();
        let _ = self.admin.await;
    }
}

/// Marks the broker reachable in `health` whenever it answers a metadata request.
async fn check_broker(sink: KafkaSink, health: Arc<Health>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
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
