//! Ripple Payments Direct 2.0 payments (seed 003 and the published OpenAPI).
//!
//! The seed page calls the state time `updatedAt`, the OpenAPI `lastStateUpdatedAt`;
//! both are accepted, `lastStateUpdatedAt` first.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{NormalizeError, opt_amount, opt_str, opt_time, req_str};
use crate::event::{
    Amount, CanonicalEvent, CanonicalState, EventType, PaymentEvent, Provider, RawJson, UpstreamIdentity,
};

/// The fields that may carry the time of the last state change, in order of preference.
pub const STATE_TIME_FIELDS: [&str; 2] = ["lastStateUpdatedAt", "updatedAt"];

/// The webhook that announced a state transition, when the payment came through one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Via<'a> {
    /// The webhook's `id`.
    pub notification_id: Option<&'a str>,
    /// The webhook's `eventType` (PAYMENT_STATE_TRANSITION).
    pub notification_type: Option<&'a str>,
}

/// One payment object (a search result item, `GET /v3/payments/{id}`, or the payment a
/// webhook points at).
pub fn payment(
    account: &str,
    raw: &Value,
    via: Via<'_>,
    observed_at: DateTime<Utc>,
) -> Result<CanonicalEvent, NormalizeError> {
    if !raw.is_object() {
        return Err(NormalizeError::NotAnObject);
    }
    let payment_id = req_str(raw, "/paymentId", "paymentId")?;
    let provider_state = req_str(raw, "/paymentState", "paymentState")?.to_owned();
    let state = CanonicalState::from_payments_direct(&provider_state);
    let updated_at = STATE_TIME_FIELDS.iter().find_map(|f| opt_time(raw, &format!("/{f}")));

    let mut amounts = Vec::new();
    if let Some(value) = opt_amount(raw, "/originator/sourceAmount") {
        amounts.push(Amount {
            role: "source".into(),
            value,
            currency: opt_str(raw, "/originator/sourceCurrency").map(str::to_owned),
            decimal_count: None,
        });
    }
    if let Some(value) = opt_amount(raw, "/destination/destinationAmount") {
        amounts.push(Amount {
            role: "destination".into(),
            value,
            currency: opt_str(raw, "/destination/destinationCurrency").map(str::to_owned),
            decimal_count: None,
        });
    }
    let mut references = BTreeMap::new();
    for (name, pointer) in
        [("internal_id", "/originator/internalId"), ("crypto_transaction_hash", "/cryptoTransactionHash")]
    {
        if let Some(v) = opt_str(raw, pointer) {
            references.insert(name.to_owned(), v.to_owned());
        }
    }

    let data = PaymentEvent {
        provider: Provider::PaymentsDirect,
        account: account.to_owned(),
        notification_id: via.notification_id.map(str::to_owned),
        notification_type: via.notification_type.map(str::to_owned),
        payment_id: payment_id.to_owned(),
        state,
        previous_state: None,
        provider_state: provider_state.clone(),
        previous_provider_state: None,
        terminal: state.is_terminal(),
        amounts,
        references,
        fraud_check: None,
        occurred_at: updated_at,
        observed_at,
        raw: RawJson::from_value(raw),
        errors: raw.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()).cloned(),
    };
    let identity =
        UpstreamIdentity::PaymentsDirectState { payment_id: payment_id.to_owned(), state: provider_state, updated_at };
    Ok(CanonicalEvent::new(EventType::PaymentStateChanged, &identity, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_item_and_get_payment_give_the_same_id() {
        let search_item = json!({
            "paymentId": "5ce2c433-a96d-48d0-8857-02637a60abf4",
            "paymentState": "COMPLETED",
            "updatedAt": "2025-10-01T14:03:12.000Z"
        });
        let full = json!({
            "paymentId": "5ce2c433-a96d-48d0-8857-02637a60abf4",
            "paymentState": "COMPLETED",
            "initiatedAt": "2025-10-01T14:00:00.000Z",
            "lastStateUpdatedAt": "2025-10-01T14:03:12Z",
            "originator": {"sourceAmount": 100.5, "sourceCurrency": "USD", "internalId": "Invoice-123"},
            "destination": {"destinationAmount": "92.10", "destinationCurrency": "EUR"}
        });
        let webhook = Via { notification_id: Some("evt-1"), notification_type: Some("PAYMENT_STATE_TRANSITION") };
        let a = payment("acme", &search_item, Via::default(), Utc::now()).map_err(|e| e.to_string());
        let b = payment("acme", &full, webhook, Utc::now()).map_err(|e| e.to_string());
        let (Ok(a), Ok(b)) = (a, b) else { panic!("normalization failed") };
        assert_eq!(a.id, b.id);
        assert_eq!(a.key(), b.key());
        assert_eq!(b.data.state, CanonicalState::Completed);
        assert!(b.data.terminal);
        assert_eq!(b.data.notification_type.as_deref(), Some("PAYMENT_STATE_TRANSITION"));
        assert_eq!(b.data.amounts.len(), 2);
        assert_eq!(b.data.amounts[0].value, "100.5");
        assert_eq!(b.data.amounts[1].value, "92.10");
        assert_eq!(b.data.references.get("internal_id").map(String::as_str), Some("Invoice-123"));
    }

    #[test]
    fn a_later_transition_gets_a_new_id() {
        let completed =
            json!({"paymentId": "p", "paymentState": "COMPLETED", "lastStateUpdatedAt": "2025-10-01T14:03:12Z"});
        let returned =
            json!({"paymentId": "p", "paymentState": "RETURNED", "lastStateUpdatedAt": "2025-10-02T09:00:00Z"});
        let a = payment("acme", &completed, Via::default(), Utc::now()).map(|e| e.id);
        let b = payment("acme", &returned, Via::default(), Utc::now()).map(|e| e.id);
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_state_is_kept() {
        let raw = json!({"paymentId": "p", "paymentState": "ON_HOLD"});
        let event = payment("acme", &raw, Via::default(), Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.data.state, CanonicalState::Unknown);
        assert_eq!(event.data.provider_state, "ON_HOLD");
        assert_eq!(event.data.occurred_at, None);
    }

    #[test]
    fn bad_payloads_are_errors() {
        let now = Utc::now();
        assert_eq!(payment("a", &json!("x"), Via::default(), now).err(), Some(NormalizeError::NotAnObject));
        assert_eq!(
            payment("a", &json!({"paymentState": "X"}), Via::default(), now).err(),
            Some(NormalizeError::Missing("paymentId"))
        );
        assert_eq!(
            payment("a", &json!({"paymentId": "p"}), Via::default(), now).err(),
            Some(NormalizeError::Missing("paymentState"))
        );
    }
}
