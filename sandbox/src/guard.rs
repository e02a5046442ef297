//! What every simulated endpoint does around its own logic: apply the endpoint's fault,
//! check the bearer token, record the request in the ledger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::errors::{self, Style};
use super::faults::FaultAction;
use super::ledger::EntryKind;
use super::oauth;
use super::state::SandboxState;

/// What the guard let through: whether to lose the response after applying the request,
/// and a fault only the endpoint's own handler can act on (`auto_ack_failed`, `ack_invalid`, `ignore_size`).
#[derive(Clone, Debug, Default)]
pub struct Pass {
    pub lost: bool,
    pub fault: Option<FaultAction>,
}

/// One endpoint of one provider.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub provider: &'static str,
    /// The fault and ledger name, e.g. `ripplenet.poll_new`.
    pub name: &'static str,
    pub style: Style,
}

/// In a `body` fault's text, replaced by a number no other answer of the sandbox got (a
/// provider handing out ever-new page tokens).
pub const ANSWER_NUMBER: &str = "{n}";
static ANSWERS: AtomicU64 = AtomicU64::new(1);

impl Endpoint {
    fn record(&self, s: &SandboxState, id: Option<String>, status: u16) {
        let mut inner = s.lock();
        let now = inner.now();
        inner.ledger.record(now, EntryKind::Request, self.provider, id, Some(self.name.into()), Some(status));
    }

    /// Applies the endpoint's fault: answers for it (status, reset), waits (latency), or
    /// passes it on to the handler (lost response and endpoint-specific faults).
    pub async fn before(&self, s: &SandboxState) -> Result<Pass, Response> {
        let fault = s.lock().faults.take(self.name);
        match fault {
            None | Some(FaultAction::DuplicateWebhook) | Some(FaultAction::OutOfOrderWebhook { .. }) => {
                Ok(Pass::default())
            }
            Some(action @ (FaultAction::AutoAckFailed | FaultAction::AckInvalid | FaultAction::IgnoreSize)) => {
                Ok(Pass { lost: false, fault: Some(action) })
            }
            Some(FaultAction::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(Pass::default())
            }
            Some(FaultAction::Status { status, retry_after }) => {
                self.record(s, None, status);
                Err(errors::injected(self.style, status, retry_after))
            }
            Some(FaultAction::Body { status, body, content_type }) => {
                self.record(s, None, status);
                let body = body.replace(ANSWER_NUMBER, &ANSWERS.fetch_add(1, Ordering::Relaxed).to_string());
                Err(errors::verbatim(status, body, &content_type))
            }
            Some(FaultAction::Reset) => {
                self.record(s, None, 0);
                Err(errors::dropped_connection())
            }
            Some(FaultAction::LostResponse) => Ok(Pass { lost: true, fault: None }),
        }
    }

    /// [`Endpoint::before`], then a valid bearer token of this provider is required.
    pub async fn guarded(&self, s: &SandboxState, headers: &HeaderMap) -> Result<Pass, Response> {
        let pass = self.before(s).await?;
        let valid = s.lock().token_valid(self.provider, oauth::bearer(headers));
        if !valid {
            self.record(s, None, 401);
            return Err(errors::error(
                self.style,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "missing, invalid or expired access token",
            ));
        }
        Ok(pass)
    }

    /// Records the request and returns the response (or drops it, for a lost response).
    pub fn finish(&self, s: &SandboxState, id: Option<String>, response: Response, lost: bool) -> Response {
        self.record(s, id, if lost { 0 } else { response.status().as_u16() });
        if lost { errors::dropped_connection() } else { response }
    }
}
