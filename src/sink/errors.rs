//! Error classes of the Kafka sink: every producer error is exactly one of these.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The local producer queue is full: wait (backpressure), then send again.
    QueueFull,
    /// The record itself can never be accepted (too large, corrupt): it goes to the DLQ with
    /// the reason, unless its source's DLQ breaker is open.
    Permanent,
    /// The topic or the broker refuses every record (broker-side validation, an invalid or
    /// forbidden topic, a timestamp policy): nothing goes to the DLQ; publishing pauses
    /// until a probe record is accepted. (Not yet for transactions: see
    /// `transaction::record_failure`.)
    TopicRefused,
    /// Anything else (timeouts, broker down, leader changes, authorization): not
    /// confirmed, so the source retries later.
    Transient,
}

/// Classifies one producer error.
pub fn classify(error: &KafkaError) -> ErrorClass {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => ErrorClass::QueueFull,
        Some(code) if is_permanent(code) => ErrorClass::Permanent,
        Some(code) if is_topic_refusal(code) => ErrorClass::TopicRefused,
        _ => ErrorClass::Transient,
    }
}

fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessage
    )
}

/// Errors that concern the topic or the broker, not one record.
fn is_topic_refusal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnsupportedForMessageFormat
            | RDKafkaErrorCode::InvalidTimestamp
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
    )
}

/// A short, stable name for the error, for headers and metrics.
pub fn error_code_name(error: &KafkaError) -> String {
    error.rdkafka_error_code().map(|c| format!("{c:?}")).unwrap_or_else(|| "Unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let e = |code| KafkaError::MessageProduction(code);
        assert_eq!(classify(&e(RDKafkaErrorCode::QueueFull)), ErrorClass::QueueFull);
        assert_eq!(classify(&e(RDKafkaErrorCode::MessageSizeTooLarge)), ErrorClass::Permanent);
        assert_eq!(classify(&e(RDKafkaErrorCode::InvalidMessage)), ErrorClass::Permanent);
        // What concerns the topic never sends the stream to the DLQ.
        for code in [
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::UnsupportedForMessageFormat,
            RDKafkaErrorCode::InvalidTimestamp,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            assert_eq!(classify(&e(code)), ErrorClass::TopicRefused, "{code:?}");
        }
        assert_eq!(classify(&e(RDKafkaErrorCode::MessageTimedOut)), ErrorClass::Transient);
        assert_eq!(classify(&e(RDKafkaErrorCode::BrokerTransportFailure)), ErrorClass::Transient);
        assert_eq!(classify(&KafkaError::Canceled), ErrorClass::Transient);
        assert_eq!(error_code_name(&e(RDKafkaErrorCode::MessageSizeTooLarge)), "MessageSizeTooLarge");
    }
}
