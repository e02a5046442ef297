//! Producer health: a fatal librdkafka error (the idempotent producer fenced or refused
//! authorization, say) cannot heal by retrying. It is caught here, so readiness fails with
//! the reason and the process exits non-zero for its supervisor to restart it.
//!
//! librdkafka reports a fatal error as an ordinary error event carrying the underlying
//! code; only the client itself (`rd_kafka_fatal_error`) says it was fatal. So every error
//! event pokes [`FatalWatch`], and the bridge's watcher asks the producers (see
//! `KafkaSink::fatal_error`) and latches the reason here.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The producers' client context: logs librdkafka's global errors, pokes the watcher, and
/// holds the first fatal error once latched. Clones share the state.
#[derive(Clone, Default)]
pub struct FatalWatch {
    latched: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    poke: Arc<Notify>,
}

impl FatalWatch {
    /// Resolves when a fatal error was latched.
    pub async fn fatal(&self) -> String {
        self.latched.cancelled().await;
        self.reason().unwrap_or_else(|| "fatal Kafka producer error".into())
    }

    /// The fatal error, if one was latched.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Records the first fatal error and wakes whoever waits in [`FatalWatch::fatal`].
    pub fn latch(&self, reason: String) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(reason);
        }
        self.latched.cancel();
    }

    /// Resolves after the next librdkafka error event.
    pub async fn poked(&self) {
        self.poke.notified().await;
    }
}

impl ClientContext for FatalWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", error = %error, reason, "librdkafka");
        self.poke.notify_one();
    }
}
