//! Error classes of the Kafka sink: every producer error is exactly one of these.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The local producer queue is full: wait (backpressure), then send again.
    QueueFull,
    /// The record itself can never be accepted (too large, invalid topic or record):
    /// it goes to the DLQ with the reason.
    Permanent,
    /// Anything else (timeouts, broker down, leader changes, authorization): not
    /// confirmed, so the source retries later.
    Transient,
}

/// Classifies one producer error.
pub fn classify(error: &KafkaError) -> ErrorClass {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => ErrorClass::QueueFull,
        Some(code) if is_permanent(code) => ErrorClass::Permanent,
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
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::UnsupportedForMessageFormat
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
        assert_eq!(classify(&e(RDKafkaErrorCode::InvalidTopic)), ErrorClass::Permanent);
        assert_eq!(classify(&e(RDKafkaErrorCode::MessageTimedOut)), ErrorClass::Transient);
        assert_eq!(classify(&e(RDKafkaErrorCode::BrokerTransportFailure)), ErrorClass::Transient);
        assert_eq!(classify(&e(RDKafkaErrorCode::TopicAuthorizationFailed)), ErrorClass::Transient);
        assert_eq!(classify(&KafkaError::Canceled), ErrorClass::Transient);
        assert_eq!(error_code_name(&e(RDKafkaErrorCode::MessageSizeTooLarge)), "MessageSizeTooLarge");
    }
}
