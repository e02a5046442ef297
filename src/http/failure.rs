//! What a failed provider call tells its caller.

use std::time::Duration;

/// A failed upstream call (transport, 429/5xx, refusal, unexpected answer).
#[derive(Debug, Clone)]
pub struct UpstreamFailure {
    pub detail: String,
    /// The server's Retry-After, if it sent one (clamped by the backoff).
    pub retry_after: Option<Duration>,
    /// The answer was not what the provider documents (counted as a processing failure).
    pub malformed: bool,
}

impl UpstreamFailure {
    pub fn new(detail: impl Into<String>) -> Self {
        Self { detail: detail.into(), retry_after: None, malformed: false }
    }
}
