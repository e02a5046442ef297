//! The canonical payment state and how each provider's own strings map onto it.
//!
//! Every mapping is total: a value paybridge does not know maps to
//! [`CanonicalState::Unknown`] and the provider's string is kept beside it, so an
//! upstream novelty never drops an event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One lifecycle that covers RippleNet, Payments Direct 2.0 and Checkout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanonicalState {
    /// A quote exists; the payment is not initiated yet (Payments Direct QUOTED).
    Quoted,
    /// Created and waiting for the next step (RippleNet PENDING, Checkout STATUS_PENDING).
    Pending,
    /// Submitted (Payments Direct INITIATED).
    Initiated,
    /// Accepted by the receiver (RippleNet ACCEPTED).
    Accepted,
    /// Details and funds being validated (Payments Direct VALIDATING).
    Validating,
    /// Waiting for just-in-time funding (Payments Direct AWAITING_FUNDING).
    AwaitingFunding,
    /// Quote and funds locked (RippleNet LOCKED).
    Locked,
    /// Settlement prepared (RippleNet PREPARED).
    Prepared,
    /// Settlement executing or executed on the ledger (RippleNet EXECUTED).
    Executed,
    /// Funds moving to the beneficiary (Payments Direct TRANSFERRING).
    Transferring,
    /// Authorized but not captured (Checkout auth-only success).
    Authorized,
    /// Finished successfully.
    Completed,
    /// Declined by a party or a rule (RippleNet LOCK_DECLINED / SETTLEMENT_DECLINED, Payments Direct DECLINED, Checkout STATUS_DECLINED).
    Declined,
    /// Failed.
    Failed,
    /// Returned by a downstream institution after completion.
    Returned,
    /// Cancelled or voided (Checkout).
    Cancelled,
    /// Refunded (Checkout).
    Refunded,
    /// A Checkout profile or token is active.
    Active,
    /// A Checkout profile or token is inactive, deleted, suspended or expired.
    Inactive,
    /// A value paybridge does not know; `provider_state` holds the provider's string.
    Unknown,
}

impl CanonicalState {
    /// Whether the payment will not change state again in the normal lifecycle.
    /// (Payments Direct documents COMPLETED as terminal even though RETURNED may follow.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Declined | Self::Failed | Self::Returned | Self::Cancelled | Self::Refunded
        )
    }

    /// RippleNet v4 `payment_status`.
    pub fn from_ripplenet(status: &str) -> Self {
        match status.trim().to_ascii_uppercase().as_str() {
            "PENDING" => Self::Pending,
            "ACCEPTED" => Self::Accepted,
            "LOCKED" => Self::Locked,
            "LOCK_DECLINED" | "SETTLEMENT_DECLINED" | "DECLINED" => Self::Declined,
            "PREPARED" => Self::Prepared,
            "EXECUTED" => Self::Executed,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "RETURNED" => Self::Returned,
            _ => Self::Unknown,
        }
    }

    /// Payments Direct 2.0 `paymentState`.
    pub fn from_payments_direct(state: &str) -> Self {
        match state.trim().to_ascii_uppercase().as_str() {
            "QUOTED" => Self::Quoted,
            "INITIATED" => Self::Initiated,
            "VALIDATING" => Self::Validating,
            "AWAITING_FUNDING" => Self::AwaitingFunding,
            "TRANSFERRING" => Self::Transferring,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "DECLINED" => Self::Declined,
            "RETURNED" => Self::Returned,
            _ => Self::Unknown,
        }
    }

    /// Checkout `status` (`STATUS_SUCCESS`, `PROFILE_STATUS_ACTIVE`, …). A successful
    /// auth-only checkout is `authorized`, not `completed`.
    pub fn from_checkout(status: &str, auth_only: bool) -> Self {
        let upper = status.trim().to_ascii_uppercase();
        let bare = upper.rsplit("STATUS_").next().unwrap_or(&upper);
        match bare {
            "SUCCESS" | "SUCCEEDED" | "COMPLETED" | "CAPTURED" if auth_only => Self::Authorized,
            "SUCCESS" | "SUCCEEDED" | "COMPLETED" | "CAPTURED" => Self::Completed,
            "AUTHORIZED" => Self::Authorized,
            "PENDING" | "PROCESSING" | "IN_PROGRESS" => Self::Pending,
            "FAILED" | "FAILURE" | "ERROR" => Self::Failed,
            "DECLINED" | "REJECTED" => Self::Declined,
            "CANCELLED" | "CANCELED" | "VOIDED" | "VOID" => Self::Cancelled,
            "REFUNDED" => Self::Refunded,
            "ACTIVE" | "CREATED" | "ENABLED" => Self::Active,
            "INACTIVE" | "DELETED" | "DISABLED" | "SUSPENDED" | "EXPIRED" => Self::Inactive,
            _ => Self::Unknown,
        }
    }
}

/// The canonical outcome of a Checkout fraud check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FraudCheckResult {
    Approved,
    Declined,
    Review,
    NotPerformed,
    /// A value paybridge does not know; `provider_value` holds the provider's string.
    Unknown,
}

impl FraudCheckResult {
    /// Checkout `fraudCheckStatus` (`FRAUD_CHECK_STATUS_APPROVED`, …).
    pub fn from_checkout(value: &str) -> Self {
        let upper = value.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("FRAUD_CHECK_STATUS_").unwrap_or(&upper);
        match bare {
            "APPROVED" | "ACCEPTED" | "PASSED" => Self::Approved,
            "DECLINED" | "REJECTED" | "FAILED" => Self::Declined,
            "REVIEW" | "IN_REVIEW" | "PENDING" | "CHALLENGED" => Self::Review,
            "NOT_PERFORMED" | "SKIPPED" | "NOT_CHECKED" => Self::NotPerformed,
            _ => Self::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CanonicalState as S;
    use super::*;

    #[test]
    fn ripplenet_lifecycle_maps() {
        let table = [
            ("ACCEPTED", S::Accepted),
            ("LOCKED", S::Locked),
            ("LOCK_DECLINED", S::Declined),
            ("PREPARED", S::Prepared),
            ("SETTLEMENT_DECLINED", S::Declined),
            ("EXECUTED", S::Executed),
            ("COMPLETED", S::Completed),
            ("FAILED", S::Failed),
            ("RETURNED", S::Returned),
            ("PENDING", S::Pending),
            ("SOMETHING_NEW", S::Unknown),
            ("", S::Unknown),
        ];
        for (raw, expected) in table {
            assert_eq!(S::from_ripplenet(raw), expected, "{raw}");
        }
    }

    #[test]
    fn payments_direct_lifecycle_maps() {
        let table = [
            ("QUOTED", S::Quoted),
            ("INITIATED", S::Initiated),
            ("VALIDATING", S::Validating),
            ("AWAITING_FUNDING", S::AwaitingFunding),
            ("TRANSFERRING", S::Transferring),
            ("COMPLETED", S::Completed),
            ("FAILED", S::Failed),
            ("DECLINED", S::Declined),
            ("RETURNED", S::Returned),
            ("ON_HOLD", S::Unknown),
        ];
        for (raw, expected) in table {
            assert_eq!(S::from_payments_direct(raw), expected, "{raw}");
        }
    }

    #[test]
    fn checkout_status_depends_on_intent() {
        assert_eq!(S::from_checkout("STATUS_SUCCESS", true), S::Authorized);
        assert_eq!(S::from_checkout("STATUS_SUCCESS", false), S::Completed);
        assert_eq!(S::from_checkout("STATUS_DECLINED", false), S::Declined);
        assert_eq!(S::from_checkout("PROFILE_STATUS_ACTIVE", false), S::Active);
        assert_eq!(S::from_checkout("TOKEN_STATUS_EXPIRED", false), S::Inactive);
        assert_eq!(S::from_checkout("STATUS_WEIRD", false), S::Unknown);
    }

    #[test]
    fn terminal_states() {
        for s in [S::Completed, S::Failed, S::Declined, S::Returned] {
            assert!(s.is_terminal(), "{s:?}");
        }
        for s in [S::Initiated, S::Transferring, S::Locked, S::Unknown] {
            assert!(!s.is_terminal(), "{s:?}");
        }
    }

    #[test]
    fn fraud_check_maps() {
        assert_eq!(FraudCheckResult::from_checkout("FRAUD_CHECK_STATUS_APPROVED"), FraudCheckResult::Approved);
        assert_eq!(FraudCheckResult::from_checkout("FRAUD_CHECK_STATUS_DECLINED"), FraudCheckResult::Declined);
        assert_eq!(FraudCheckResult::from_checkout("FRAUD_CHECK_STATUS_MAYBE"), FraudCheckResult::Unknown);
    }
}
