//! paybridge: moves payment-provider notifications into Kafka. Nothing is acknowledged
//! upstream before the broker has confirmed the event.

pub mod ack;
pub mod admin;
pub mod backfill;
pub mod bridge;
pub mod cluster;
pub mod config;
pub mod cursor_command;
pub mod dead_letter;
pub mod event;
pub mod health;
pub mod http;
pub mod intake;
pub mod log_limit;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod progress;
pub mod reconcile;
pub mod registry;
pub mod schemas;
pub mod sink;
pub mod sources;
pub mod tail;
pub mod trace;

use tokio_util::sync::CancellationToken;

/// This build's version (the crate's) and the commit it was built from (`build.rs`:
/// `PAYBRIDGE_COMMIT` or git, "unknown" without either).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("PAYBRIDGE_COMMIT");

/// Why the bridge could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Topics(#[from] sink::topics::TopicError),
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
    Cluster(#[from] cluster::ClusterError),
}

/// Runs the bridge until `shutdown` is cancelled or the producer fails fatally (see
/// [`bridge::Bridge`]).
pub async fn run(config: config::Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let Some(bridge) = bridge::Bridge::start(config, &shutdown).await? else {
        tracing::info!("stopped before the brokers answered");
        return Ok(());
    };
    bridge.run_until(&shutdown).await
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

/// Resolves at SIGTERM or SIGINT (Ctrl-C).
pub async fn wait_for_signal() {
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
