//! The running bridge: admin server, broker check, producer, pipeline, sources, webhook
//! intake, and the ordered shutdown. `paybridge run` and the tests drive the same code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::{Config, SourceConfig};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineSettings, Submitter};
use crate::sink::kafka::KafkaSink;
use crate::sources::SourceContext;
use crate::sources::runtime::Singleton;
use crate::sources::start::Wiring;
use crate::{admin, intake};

mod startup;
mod watch;

use startup::{singleton_tasks, wait_for_topics};
use watch::{check_broker, follow_refusals, watch_brokers_gone};

/// How often the producers are asked for a fatal error besides after each error event.
const FATAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A started bridge.
pub struct Bridge {
    config: Config,
    sink: KafkaSink,
    pipeline: Pipeline,
    health: Arc<Health>,
    stop_sources: CancellationToken,
    stop_intake: CancellationToken,
    stop_background: CancellationToken,
    sources: JoinSet<()>,
    intake: Option<JoinHandle<std::io::Result<()>>>,
    admin: JoinHandle<std::io::Result<()>>,
    checker: JoinHandle<()>,
    cluster: Option<Cluster>,
}

impl Bridge {
    /// Starts the admin server, waits for the brokers (retrying while they are unreachable;
    /// a missing topic is an error), then starts the producer, pipeline, sources and intake.
    /// None when `stop` is cancelled during the wait.
    pub async fn start(config: Config, stop: &CancellationToken) -> Result<Option<Self>, RunError> {
        // A signing key that cannot be used stops the start at once, not after the broker wait.
        for source in &config.sources {
            if let SourceConfig::Checkout(cfg) = source
                && let Err(e) = crate::http::jwt::AssertionSigner::from_config(&cfg.auth)
            {
                return Err(RunError::SourceStart { name: cfg.name.clone(), reason: e.to_string() });
            }
        }
        // So is an intake certificate that cannot be read.
        let intake_tls = match &config.intake.tls {
            Some(tls) => Some(crate::intake::tls::ReloadingCert::load(tls).map_err(RunError::Intake)?),
            None => None,
        };
        let value_format = match &config.kafka.schema_registry {
            Some(registry) => match crate::registry::check_at_start(registry, &config.kafka.topic, stop).await {
                Ok(Some(format)) => format,
                Ok(None) => return Ok(None),
                Err(reason) => return Err(RunError::SchemaRegistry(reason)),
            },
            None => crate::sink::wire::ValueFormat::Json,
        };
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new());
        let sink = KafkaSink::new(&config.kafka)?.with_value_format(value_format);
        let settings = PipelineSettings {
            capacity: config.pipeline.capacity,
            delivery_deadline: config.kafka.delivery_timeout.get(),
        };
        let pipeline = Pipeline::start(sink.clone(), settings, metrics.clone());

        let (listener, admin_addr) = bind("admin.listen", config.admin.listen.0).await?;
        let stop_background = CancellationToken::new();
        let state =
            admin::AdminState { metrics: metrics.clone(), health: health.clone(), submitter: pipeline.submitter() };
        let admin = tokio::spawn(admin::serve(listener, state, stop_background.clone()));

        if !wait_for_topics(&config, &metrics, stop).await? {
            stop_background.cancel();
            let _ = admin.await;
            return Ok(None);
        }
        health.broker_reachable();
        let checker = tokio::spawn(check_broker(sink.clone(), health.clone(), stop_background.clone()));
        let (fatal_sink, fatal_health, fatal_metrics) = (sink.clone(), health.clone(), metrics.clone());
        let fatal_stop = stop_background.clone();
        tokio::spawn(async move {
            tokio::select! {
                reason = fatal_sink.watch_fatal(FATAL_CHECK_INTERVAL) => {
                    fatal_health.set_fatal(&reason);
                    fatal_metrics.producer_fatal();
                }
                _ = fatal_stop.cancelled() => {}
            }
        });

        tokio::spawn(follow_refusals(sink.clone(), health.clone(), metrics.clone(), stop_background.clone()));
        tokio::spawn(crate::sink::credentials::watch_password_file(
            config.kafka.clone(),
            config.kafka.secret_reload_interval.get(),
            stop_background.clone(),
        ));

        let cluster = match &config.cluster {
            Some(cluster) => Some(
                Cluster::start(cluster, &config.kafka, &singleton_tasks(&config), health.clone(), metrics.clone())
                    .await
                    .map_err(RunError::Cluster)?,
            ),
            None => None,
        };
        let singleton = |task: &str| -> Option<Singleton> {
            let cluster = cluster.as_ref()?;
            Some((cluster.gate(task)?, Box::new(cluster.on_change(task))))
        };
        let stop_sources = CancellationToken::new();
        let ctx = SourceContext {
            submitter: pipeline.submitter(),
            sink: sink.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            stop: stop_sources.clone(),
        };
        let mut sources = JoinSet::new();
        let mut hooks = intake::Hooks::new();
        let wiring = Wiring {
            ctx: ctx.clone(),
            kafka: &config.kafka,
            pipeline_capacity: config.pipeline.capacity,
            singleton: &singleton,
        };
        for source in &config.sources {
            metrics.register_source(source.name(), source.webhook().is_some());
            let started = crate::sources::start::start(source, &wiring)
                .await
                .map_err(|reason| RunError::SourceStart { name: source.name().to_owned(), reason })?;
            hooks.extend(started.run(&mut sources));
        }

        let stop_intake = CancellationToken::new();
        let (intake, intake_addr) = if hooks.is_empty() {
            (None, None::<SocketAddr>)
        } else {
            let router = intake::router(&hooks, &config.intake, &metrics).map_err(RunError::Intake)?;
            let tls = match &intake_tls {
                Some(cert) => {
                    let interval =
                        config.intake.tls.as_ref().map_or(Duration::from_secs(30), |t| t.reload_interval.get());
                    tokio::spawn(intake::tls::watch(cert.clone(), interval, stop_background.clone()));
                    Some(cert.clone())
                }
                None => None,
            };
            let (listener, addr) = bind("intake.listen", config.intake.listen.0).await?;
            let options = intake::ServeOptions { header_timeout: config.intake.header_timeout.get(), tls };
            (Some(tokio::spawn(intake::serve(listener, router, options, stop_intake.clone()))), Some(addr))
        };
        let scheme = if config.intake.tls.is_some() { "https" } else { "http" };
        let intake_line = match intake_addr {
            Some(addr) => format!("webhooks on {scheme}://{addr}"),
            None => "no webhook intake (no source takes webhooks)".to_owned(),
        };
        tracing::info!(
            "paybridge started: version {} (commit {}), publishing to {} (DLQ {}) on {}; admin on http://{admin_addr}; {intake_line}; {} source(s)",
            crate::version::VERSION,
            crate::version::COMMIT,
            sink.topic(),
            config.kafka.dlq_topic,
            config.kafka.bootstrap_servers,
            config.sources.len(),
        );
        for source in &config.sources {
            tracing::info!("source {} ({}): {}", source.name(), source.provider(), source.summary());
        }
        Ok(Some(Self {
            config,
            sink,
            pipeline,
            health,
            stop_sources,
            stop_intake,
            stop_background,
            sources,
            intake,
            admin,
            checker,
            cluster,
        }))
    }

    pub fn submitter(&self) -> Submitter {
        self.pipeline.submitter()
    }

    /// The event sink (tests raise producer errors through it).
    pub fn sink(&self) -> &KafkaSink {
        &self.sink
    }

    /// Runs until `shutdown` is cancelled, or until the producer reports a fatal error
    /// (readiness fails with its reason at once); then shuts down in order. A fatal error
    /// is returned, so the process exits non-zero and its supervisor restarts it.
    pub async fn run_until(self, shutdown: &CancellationToken) -> Result<(), RunError> {
        let fatal = self.sink.fatal_watch().clone();
        let failure = tokio::select! {
            _ = shutdown.cancelled() => None,
            reason = fatal.fatal() => Some(reason),
        };
        if let Some(reason) = &failure {
            self.health.set_fatal(reason);
            tracing::error!(%reason, "stopping: the producer cannot publish any more");
        }
        self.shutdown().await;
        match failure {
            Some(reason) => Err(RunError::ProducerFatal(reason)),
            None => Ok(()),
        }
    }

    /// Ordered shutdown within `shutdown.timeout`: readiness off; pollers and intake take no
    /// new pages or webhooks; the pages and webhooks already taken finish publishing and
    /// acknowledge what the broker confirmed; then the pipeline closes (what is still
    /// unconfirmed resolves Retry and is not acknowledged) and the producer flushes in the
    /// remaining time; the admin server stops last.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        self.health.set_shutting_down();
        let timeout = self.config.shutdown.timeout.get();
        let deadline = tokio::time::Instant::now() + timeout;
        // A broker that is gone confirms nothing more: waiting out the rest of the timeout
        // would only delay the exit (what is unconfirmed is not acknowledged either way).
        let gone = CancellationToken::new();
        let watcher = tokio::spawn(watch_brokers_gone(self.sink.clone(), gone.clone()));
        let until_deadline = |what: &'static str| {
            let gone = gone.clone();
            async move {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = gone.cancelled() => tracing::warn!("the brokers stopped answering; not waiting for {what}"),
                }
            }
        };
        self.stop_sources.cancel();
        self.stop_intake.cancel();
        let settled = tokio::select! {
            () = async {
                if let Some(intake) = self.intake.take() {
                    let _ = intake.await;
                }
                while self.sources.join_next().await.is_some() {}
            } => true,
            () = until_deadline("the sources to settle") => false,
        };
        if !settled {
            tracing::warn!(
                "sources did not settle before the deadline; abandoning them (unacknowledged notifications are delivered again)"
            );
            self.sources.abort_all();
        }
        // The tasks are settled: leave the group so the others take them over at once.
        if let Some(cluster) = self.cluster.take() {
            cluster.leave().await;
        }
        let remaining = || match gone.is_cancelled() {
            true => Duration::ZERO,
            false => deadline.saturating_duration_since(tokio::time::Instant::now()),
        };
        self.pipeline.shutdown_or(remaining(), until_deadline("the pipeline")).await;
        let sink = self.sink;
        let flush_for = remaining();
        match tokio::task::spawn_blocking(move || sink.flush(flush_for)).await {
            Ok(Ok(())) => tracing::info!("producer flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "producer not fully flushed before the deadline"),
            Err(e) => tracing::warn!(error = %e, "flush task failed"),
        }
        watcher.abort();
        self.stop_background.cancel();
        self.checker.abort();
        let _ = self.admin.await;
    }
}

/// A listener on `wanted` (the config key `what` names it) and the address it got.
async fn bind(what: &'static str, wanted: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), RunError> {
    let listener =
        tokio::net::TcpListener::bind(wanted).await.map_err(|source| RunError::Bind { what, addr: wanted, source })?;
    let addr = listener.local_addr().unwrap_or(wanted);
    Ok((listener, addr))
}

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Topics(#[from] crate::sink::topics::TopicError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind { what: &'static str, addr: std::net::SocketAddr, source: std::io::Error },
    #[error("{0}")]
    ProducerFatal(String),
    #[error("source {name:?} cannot start: {reason}")]
    SourceStart { name: String, reason: String },
    #[error("the event contract check failed: {0}")]
    SchemaRegistry(String),
    #[error("the webhook intake cannot start: {0}")]
    Intake(String),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// Runs the bridge until `shutdown` is cancelled or the producer fails fatally (see
/// [`Bridge`]).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let Some(bridge) = Bridge::start(config, &shutdown).await? else {
        tracing::info!("stopped before the brokers answered");
        return Ok(());
    };
    bridge.run_until(&shutdown).await
}

/// [`run`] until SIGTERM or SIGINT.
pub async fn run_until_signal(config: Config) -> Result<(), RunError> {
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        crate::signal::wait_for_signal().await;
        trigger.cancel();
    });
    run(config, shutdown).await
}
