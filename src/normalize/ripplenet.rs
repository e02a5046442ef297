//! RippleNet v4 orchestration notifications (seeds 000, 002, 004).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::NormalizeError;
use super::field::{Field, opt, opt_time, req};
use crate::event::{CanonicalEvent, CanonicalState, EventType, PaymentEvent, Provider, RawJson, UpstreamIdentity};

/// The fields of a notification paybridge reads (the rest stays in `data.raw`).
#[derive(Deserialize)]
struct Notification<'a> {
    #[serde(borrow, default)]
    uuid: Option<Field<'a>>,
    #[serde(borrow, default)]
    notification_type: Option<Field<'a>>,
    #[serde(borrow, default)]
    created_at: Option<Field<'a>>,
    #[serde(borrow, default)]
    notification_payload: Option<Field<'a, Payload<'a>>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    payment_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    payment_status: Option<Field<'a>>,
    #[serde(borrow, default)]
    previous_payment_status: Option<Field<'a>>,
    #[serde(borrow, default)]
    sender_end_to_end_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    original_sender_end_to_end_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    original_payment_id: Option<Field<'a>>,
}

/// One notification as returned by `GET /v4/orchestration/payment/notification[/{uuid}]`.
pub fn notification(
    account: &str,
    raw: &RawJson,
    observed_at: DateTime<Utc>,
) -> Result<CanonicalEvent, NormalizeError> {
    if !raw.is_object() {
        return Err(NormalizeError::NotAnObject);
    }
    let read: Notification<'_> =
        serde_json::from_str(raw.get()).map_err(|e| NormalizeError::Unreadable(e.to_string()))?;
    let uuid = req(&read.uuid, "uuid")?;
    let payload = read
        .notification_payload
        .as_ref()
        .and_then(Field::as_object)
        .ok_or(NormalizeError::Missing("notification_payload"))?;
    let payment_id = req(&payload.payment_id, "notification_payload.payment_id")?;
    let provider_state = opt(&payload.payment_status).unwrap_or_default().to_owned();
    let previous_provider_state = opt(&payload.previous_payment_status).map(str::to_owned);
    let state = CanonicalState::from_ripplenet(&provider_state);

    // Payload fields copied into `data.references` when present.
    let references: BTreeMap<String, String> = [
        ("sender_end_to_end_id", &payload.sender_end_to_end_id),
        ("original_sender_end_to_end_id", &payload.original_sender_end_to_end_id),
        ("original_payment_id", &payload.original_payment_id),
    ]
    .into_iter()
    .filter_map(|(k, field)| opt(field).map(|v| (k.to_owned(), v.to_owned())))
    .collect();

    let data = PaymentEvent {
        provider: Provider::Ripplenet,
        account: account.to_owned(),
        notification_id: Some(uuid.to_owned()),
        notification_type: opt(&read.notification_type).map(str::to_owned),
        payment_id: payment_id.to_owned(),
        state,
        previous_state: previous_provider_state.as_deref().map(CanonicalState::from_ripplenet),
        provider_state,
        previous_provider_state,
        terminal: state.is_terminal(),
        amounts: Vec::new(),
        references,
        fraud_check: None,
        occurred_at: opt_time(&read.created_at),
        observed_at,
        raw: raw.clone(),
        errors: None,
    };
    let identity = UpstreamIdentity::RipplenetNotification(uuid.to_owned());
    Ok(CanonicalEvent::new(EventType::PaymentStateChanged, &identity, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn notification(account: &str, raw: &Value, now: DateTime<Utc>) -> Result<CanonicalEvent, NormalizeError> {
        super::notification(account, &RawJson::from_value(raw), now)
    }

    fn sample() -> Value {
        json!({
            "uuid": "2b6a2e11-5740-4887-993a-8c41c6054f18",
            "notification_type": "NOTIFY_ACCEPT",
            "notification_version": "1.0",
            "notification_status": "NEW",
            "notification_payload": {
                "sender_end_to_end_id": "1657713291",
                "payment_id": "3ccb7f01-9a18-439f-8ff4-4779d2e49058",
                "payment_status": "ACCEPTED",
                "previous_payment_status": "PENDING",
                "connector_role": "SENDING",
                "payment_type": "REGULAR",
                "payout_method": null,
                "original_sender_end_to_end_id": null,
                "original_payment_id": null,
                "output": null
            },
            "created_at": "2022-07-13T11:54:55.765Z",
            "modified_at": "2022-07-13T12:08:42.015Z"
        })
    }

    #[test]
    fn maps_the_seed_sample() {
        let now = Utc::now();
        let event = notification("acme", &sample(), now).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.subject, "3ccb7f01-9a18-439f-8ff4-4779d2e49058");
        assert_eq!(event.data.state, CanonicalState::Accepted);
        assert_eq!(event.data.previous_state, Some(CanonicalState::Pending));
        assert_eq!(event.data.provider_state, "ACCEPTED");
        assert_eq!(event.data.references.get("sender_end_to_end_id").map(String::as_str), Some("1657713291"));
        assert!(!event.data.references.contains_key("original_payment_id"));
        assert_eq!(event.time.to_rfc3339(), "2022-07-13T11:54:55.765+00:00");
        assert_eq!(event.data.raw.to_value(), sample());
        assert_eq!(event.key(), "ripplenet/acme/3ccb7f01-9a18-439f-8ff4-4779d2e49058");
    }

    #[test]
    fn status_flip_between_new_and_sent_keeps_the_id() {
        let mut sent = sample();
        sent["notification_status"] = json!("SENT");
        sent["modified_at"] = json!("2022-07-13T13:00:00Z");
        let a = notification("acme", &sample(), Utc::now()).map(|e| (e.id, e.key()));
        let b = notification("acme", &sent, Utc::now()).map(|e| (e.id, e.key()));
        assert!(a.is_ok());
        assert_eq!(a, b, "a NEW poll and a SENT sweep (or a webhook fetch) give the same id and key");
    }

    #[test]
    fn unknown_status_is_kept_not_dropped() {
        let mut raw = sample();
        raw["notification_payload"]["payment_status"] = json!("BRAND_NEW_STATE");
        let event = notification("acme", &raw, Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.data.state, CanonicalState::Unknown);
        assert_eq!(event.data.provider_state, "BRAND_NEW_STATE");
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let now = Utc::now();
        assert_eq!(notification("a", &json!([]), now).err(), Some(NormalizeError::NotAnObject));
        assert_eq!(
            notification("a", &json!({"notification_payload": {}}), now).err(),
            Some(NormalizeError::Missing("uuid"))
        );
        assert_eq!(notification("a", &json!({"uuid": 7}), now).err(), Some(NormalizeError::WrongType("uuid")));
        assert_eq!(
            notification("a", &json!({"uuid": "u"}), now).err(),
            Some(NormalizeError::Missing("notification_payload"))
        );
        assert_eq!(
            notification("a", &json!({"uuid": "u", "notification_payload": {"payment_id": null}}), now).err(),
            Some(NormalizeError::Missing("notification_payload.payment_id"))
        );
    }
}
