//! Producer health: a fatal librdkafka error (the idempotent producer fenced or refused
//! authorization, say) cannot heal by retrying. It is caught here, so readiness fails with
//! the reason and the process exits non-zero for its supervisor to restart it.

use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio_util::sync::CancellationToken;

/// The producers' client context: logs librdkafka's global errors and latches the first
/// fatal one. Clones share the latch.
#[derive(Clone, Default)]
pub struct FatalWatch {
    latched: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl FatalWatch {
    /// Resolves when a fatal error was reported.
    pub async fn fatal(&self) -> String {
        self.latched.cancelled().await;
        self.reason().unwrap_or_else(|| "fatal producer error".into())
    }

    /// The fatal error, if one happened.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }
}

impl ClientContext for FatalWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(error = %error, reason, "fatal Kafka producer error: nothing more can be published");
            if let Ok(mut slot) = self.reason.lock() {
                slot.get_or_insert_with(|| format!("fatal Kafka producer error: {reason}"));
            }
            self.latched.cancel();
        } else {
            tracing::warn!(error = %error, reason, "librdkafka");
        }
    }
}
