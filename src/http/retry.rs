//! A bounded number of attempts at one provider call while the provider is unavailable (429,
//! 5xx, no answer, no token), for the commands that read a provider to an end (backfill,
//! reconcile): backoff honouring Retry-After between attempts, stoppable between them.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::client::ApiError;

/// Calls `call` up to `attempts` times while it fails with a retryable error; Ok(None) when
/// `stop` is cancelled during a wait. Other errors, and the last one, come back as
/// "`what`: error".
pub async fn within_attempts<T, F, Fut>(
    attempts: u32,
    backoff_max: Duration,
    what: &str,
    stop: &CancellationToken,
    mut call: F,
) -> Result<Option<T>, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut backoff = Backoff::new(backoff_max);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Ok(value) => return Ok(Some(value)),
            Err(e @ (ApiError::Retryable { .. } | ApiError::Token(_))) if attempt < attempts => {
                let retry_after = match &e {
                    ApiError::Retryable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = backoff.next(retry_after);
                tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "{what} failed; trying again");
                tokio::select! {
                    () = stop.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}
