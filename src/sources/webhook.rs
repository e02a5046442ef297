//! What every webhook source shares: the outcome of one delivery, and the trait the intake
//! serves each of them through (one route shape for every provider).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::WebhookConfig;

/// What became of one webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Everything it announced is in Kafka (or the DLQ): answer 200.
    Committed,
    /// The provider does not know what it names (`what`): answer 200, since a retry cannot
    /// help.
    Unknown(&'static str),
    /// Something paybridge does not act on (`what`): answer 200.
    Ignored(&'static str),
    /// Not committed (broker down, the provider's API failing, …): answer 503 so the
    /// provider retries.
    NotCommitted(String),
    /// The source's webhook-driven upstream calls are at their per-second cap: answer 429
    /// with this Retry-After, before any upstream call.
    Throttled(std::time::Duration),
}

/// A source that takes webhooks.
pub trait WebhookSource: Send + Sync {
    fn name(&self) -> &str;

    fn webhook_config(&self) -> &WebhookConfig;

    /// The largest body accepted unless `webhook.max_body_bytes` says otherwise.
    fn default_max_body(&self) -> usize;

    /// Takes one delivery: the reason when `body` is not the provider's payload (answered
    /// 400), else what came of it once known (the intake bounds the wait by
    /// `webhook.commit_timeout`).
    fn receive(self: Arc<Self>, body: Vec<u8>) -> BoxFuture<'static, Result<WebhookOutcome, &'static str>>;
}
