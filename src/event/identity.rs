//! Deterministic event ids and Kafka keys.
//!
//! The id is a UUIDv5 in [`NAMESPACE`] over the JSON array
//! `["<provider>", "<account>", <identity parts>...]`, where the identity parts are:
//!
//! | provider | identity parts |
//! | --- | --- |
//! | ripplenet | notification uuid, lower-case hyphenated (a webhook `msg_id` is the same uuid) |
//! | checkout | `messageId`; a message without one (period query) uses `"content"`, createdAt, the notification kind, its reference and status |
//! | payments_direct | paymentId (lower-case), paymentState (upper-case), lastStateUpdatedAt as RFC 3339 UTC with 9 fractional digits (or `""` when absent) |
//!
//! Because only upstream identity goes in, the same notification reached by two paths
//! (NEW poll and SENT sweep, webhook and poll, search page and webhook fetch) gets the same id.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::Provider;

/// The paybridge namespace: UUIDv5 of the DNS name `paybridge.dev` in the DNS namespace.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x4e1dc657_3446_588e_ba6e_3b6e01281e38);

/// What identifies one upstream notification, per provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamIdentity {
    /// A RippleNet v4 notification uuid.
    RipplenetNotification(String),
    /// A Checkout `messageId`.
    CheckoutMessage(String),
    /// A Checkout message without a `messageId` (the period query): its content identifies it.
    CheckoutContent { created_at: String, kind: String, reference: String, status: String },
    /// A Payments Direct state: paymentId + paymentState + lastStateUpdatedAt.
    PaymentsDirectState { payment_id: String, state: String, updated_at: Option<DateTime<Utc>> },
}

impl UpstreamIdentity {
    pub fn provider(&self) -> Provider {
        match self {
            Self::RipplenetNotification(_) => Provider::Ripplenet,
            Self::CheckoutMessage(_) | Self::CheckoutContent { .. } => Provider::Checkout,
            Self::PaymentsDirectState { .. } => Provider::PaymentsDirect,
        }
    }

    fn parts(&self) -> Vec<String> {
        match self {
            Self::RipplenetNotification(uuid) => vec![normalize_uuid(uuid)],
            Self::CheckoutMessage(id) => vec![id.trim().to_owned()],
            Self::CheckoutContent { created_at, kind, reference, status } => vec![
                "content".to_owned(),
                canonical_time_str(created_at),
                kind.clone(),
                reference.clone(),
                status.clone(),
            ],
            Self::PaymentsDirectState { payment_id, state, updated_at } => vec![
                normalize_uuid(payment_id),
                state.trim().to_ascii_uppercase(),
                updated_at.map(canonical_time).unwrap_or_default(),
            ],
        }
    }
}

/// The deterministic event id of one upstream notification for one account.
pub fn event_id(account: &str, identity: &UpstreamIdentity) -> Uuid {
    let mut name = vec![identity.provider().as_str().to_owned(), account.to_owned()];
    name.extend(identity.parts());
    // Serializing a Vec<String> cannot fail; the fallback keeps this total anyway.
    let encoded = serde_json::to_string(&name).unwrap_or_else(|_| name.join("\u{1f}"));
    Uuid::new_v5(&NAMESPACE, encoded.as_bytes())
}

/// The Kafka key: the payment, scoped by provider and account, so every state change of
/// one payment lands in one partition, in order.
pub fn kafka_key(provider: Provider, account: &str, payment_id: &str) -> String {
    format!("{}/{}/{}", provider.as_str(), account, payment_id.trim())
}

/// RFC 3339 UTC with nanoseconds, so "…12Z" and "…12.000Z" identify the same instant.
pub fn canonical_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn canonical_time_str(text: &str) -> String {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| canonical_time(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| text.trim().to_owned())
}

fn normalize_uuid(text: &str) -> String {
    Uuid::parse_str(text.trim())
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| text.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(payment_id: &str, state: &str, at: &str) -> UpstreamIdentity {
        let updated_at = DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc));
        UpstreamIdentity::PaymentsDirectState { payment_id: payment_id.into(), state: state.into(), updated_at }
    }

    #[test]
    fn namespace_is_the_documented_one() {
        assert_eq!(NAMESPACE, Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"paybridge.dev"));
    }

    #[test]
    fn ripplenet_uuid_spelling_does_not_matter() {
        let a =
            event_id("acme", &UpstreamIdentity::RipplenetNotification("2B6A2E11-5740-4887-993A-8C41C6054F18".into()));
        let b =
            event_id("acme", &UpstreamIdentity::RipplenetNotification(" 2b6a2e11-5740-4887-993a-8c41c6054f18".into()));
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 5);
    }

    #[test]
    fn payments_direct_timestamp_precision_does_not_matter() {
        let a = event_id("acme", &pd("5ce2c433-a96d-48d0-8857-02637a60abf4", "COMPLETED", "2025-10-01T14:03:12Z"));
        let b = event_id("acme", &pd("5CE2C433-A96D-48D0-8857-02637A60ABF4", "completed", "2025-10-01T14:03:12.000Z"));
        let c =
            event_id("acme", &pd("5ce2c433-a96d-48d0-8857-02637a60abf4", "COMPLETED", "2025-10-01T16:03:12.000+02:00"));
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn different_notifications_get_different_ids() {
        let base = pd("5ce2c433-a96d-48d0-8857-02637a60abf4", "COMPLETED", "2025-10-01T14:03:12Z");
        let ids = [
            event_id("acme", &base),
            event_id("acme", &pd("5ce2c433-a96d-48d0-8857-02637a60abf4", "RETURNED", "2025-10-01T14:03:12Z")),
            event_id("acme", &pd("5ce2c433-a96d-48d0-8857-02637a60abf4", "COMPLETED", "2025-10-01T14:03:13Z")),
            event_id("other", &base),
            event_id("acme", &UpstreamIdentity::CheckoutMessage("5ce2c433-a96d-48d0-8857-02637a60abf4".into())),
            event_id("acme", &UpstreamIdentity::RipplenetNotification("5ce2c433-a96d-48d0-8857-02637a60abf4".into())),
        ];
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn separators_cannot_collide() {
        let a = event_id("a|b", &UpstreamIdentity::CheckoutMessage("c".into()));
        let b = event_id("a", &UpstreamIdentity::CheckoutMessage("b|c".into()));
        assert_ne!(a, b);
    }

    #[test]
    fn key_is_payment_scoped() {
        assert_eq!(kafka_key(Provider::Ripplenet, "acme", "p-1"), "ripplenet/acme/p-1");
        assert_ne!(kafka_key(Provider::Ripplenet, "acme", "p-1"), kafka_key(Provider::Ripplenet, "other", "p-1"));
    }
}
