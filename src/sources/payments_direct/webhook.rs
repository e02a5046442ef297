//! `PAYMENT_STATE_TRANSITION` webhooks: a thin payload, so the payment is fetched with the
//! source's own credentials (nothing in the body is trusted beyond the payment id) and its
//! current state is published, with the id the search path gives that state. The next
//! search cycle covers whatever a lost webhook missed.

use chrono::Utc;
use serde_json::Value;

use super::PaymentsDirect;
use crate::normalize::payments_direct::{Via, payment};

/// The only event type Payments Direct sends.
pub const STATE_TRANSITION: &str = "PAYMENT_STATE_TRANSITION";

/// A webhook body that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `{id, eventType: PAYMENT_STATE_TRANSITION, eventVersion, eventData{paymentId, …}}`.
    StateTransition { id: String, payment_id: String },
    /// Another event type: answered 200 and counted as ignored.
    Other { event_type: String },
}

/// Validates `{id, eventType, eventVersion, eventData{paymentId, …}}`; the reason otherwise.
pub fn envelope(body: &[u8]) -> Result<Envelope, &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the body must be JSON")?;
    let text = |pointer: &str| v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let id = text("/id").ok_or("id is missing")?;
    let event_type = text("/eventType").ok_or("eventType is missing")?;
    if !v.get("eventVersion").is_some_and(Value::is_u64) {
        return Err("eventVersion must be an integer");
    }
    if !v.get("eventData").is_some_and(Value::is_object) {
        return Err("eventData must be an object");
    }
    if event_type != STATE_TRANSITION {
        return Ok(Envelope::Other { event_type: event_type.to_owned() });
    }
    let payment_id = text("/eventData/paymentId").ok_or("eventData.paymentId is missing")?;
    // A UUID in the spec; anything else would end up in the fetch's URL path.
    if uuid::Uuid::parse_str(payment_id).is_err() {
        return Err("eventData.paymentId must be a UUID");
    }
    Ok(Envelope::StateTransition { id: id.to_owned(), payment_id: payment_id.to_owned() })
}

/// What a state-transition webhook came to.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The payment's current state is in Kafka (or the DLQ): answer 200.
    Committed,
    /// The provider does not know the payment: answer 200 (a retry cannot help), counted.
    Unknown,
    /// Not committed (fetch failed, broker slow or down): answer 503, the provider retries.
    NotCommitted(String),
}

impl PaymentsDirect {
    /// Fetches the webhook's payment and publishes its current state; resolves when the
    /// broker confirmed it (the intake bounds the wait by `commit_timeout`).
    pub async fn webhook(&self, id: &str, payment_id: &str) -> WebhookOutcome {
        let raw = match self.api.payment(payment_id).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.ctx.metrics.webhook_unknown(&self.config.name);
                tracing::info!(source = %self.config.name, payment_id, "webhook for an unknown payment; answered 200");
                return WebhookOutcome::Unknown;
            }
            Err(e) => {
                tracing::warn!(source = %self.config.name, payment_id, error = %e, "cannot fetch the webhook's payment; answered 503");
                return WebhookOutcome::NotCommitted(format!("cannot fetch the payment: {e}"));
            }
        };
        let via = Via { notification_id: Some(id), notification_type: Some(STATE_TRANSITION) };
        // GET /v3/payments/{id} carries the failure details; the normalizer keeps them.
        let event = match payment(self.config.account(), &raw, via, Utc::now()) {
            Ok(event) => event,
            Err(e) => {
                // The DLQ keeps it; the search path meets the same payload and does the same.
                return match self.dead_letter(&raw, &format!("cannot normalize: {e}")).await {
                    Ok(()) => WebhookOutcome::Committed,
                    Err(_) => WebhookOutcome::NotCommitted("stopping".into()),
                };
            }
        };
        let id = event.id.to_string();
        if self.recent.contains(&id) {
            // The search (or an earlier delivery of this webhook) got it confirmed already.
            tracing::debug!(source = %self.config.name, payment_id, "state already in Kafka; answered 200");
            return WebhookOutcome::Committed;
        }
        let handle = match self.ctx.submitter.submit(&self.config.name, vec![event]).await {
            Ok(handle) => handle,
            Err(e) => return WebhookOutcome::NotCommitted(e.to_string()),
        };
        let outcome = handle.outcome().await;
        match outcome.events.first().map(|e| &e.outcome) {
            Some(o) if o.is_settled() => {
                self.recent.committed(&id);
                WebhookOutcome::Committed
            }
            Some(o) => WebhookOutcome::NotCommitted(format!("{o:?}")),
            None => WebhookOutcome::NotCommitted("no outcome".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_validated_and_other_types_told_apart() {
        let ok = br#"{"id": "n-1", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
                      "eventData": {"paymentId": "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41", "paymentState": "COMPLETED"}}"#;
        let payment_id = "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41".to_owned();
        assert_eq!(envelope(ok), Ok(Envelope::StateTransition { id: "n-1".into(), payment_id }));
        let traversal = br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {"paymentId": ".."}}"#;
        assert_eq!(envelope(traversal), Err("eventData.paymentId must be a UUID"));
        let other = br#"{"id": "n-2", "eventType": "QUOTE_EXPIRED", "eventVersion": 1, "eventData": {}}"#;
        assert_eq!(envelope(other), Ok(Envelope::Other { event_type: "QUOTE_EXPIRED".into() }));
        assert!(envelope(b"not json").is_err());
        assert!(
            envelope(
                br#"{"eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {"paymentId": "p"}}"#
            )
            .is_err()
        );
        assert!(envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": "1", "eventData": {"paymentId": "p"}}"#).is_err());
        assert!(
            envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {}}"#)
                .is_err()
        );
        assert!(
            envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": []}"#)
                .is_err()
        );
        assert!(envelope(br#"[]"#).is_err());
    }
}
