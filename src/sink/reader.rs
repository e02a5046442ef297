//! Readers of assigned partitions (the state topic's positions, the events read back after a
//! restart): they never join a group nor commit, so the principal needs no ACL on any group.
//! librdkafka's assign needs a `group.id` all the same, and looks up that group's coordinator,
//! which a principal without Describe on the group is refused; that refusal is expected and
//! ignored (logged at debug), never an error an operator must act on.

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// A reader's consumer.
pub type Reader = BaseConsumer<ReaderContext>;

/// The context of a [`Reader`]: librdkafka's errors logged as the default context does, but
/// the coordinator lookup's "group authorization failed" ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_group_lookup(&error) {
            tracing::debug!(%error, reason, "group coordinator refused (a reader of assigned partitions needs none)");
        } else {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Whether `error` is the coordinator lookup refused for want of Describe on the reader's
/// group: nothing a reader of assigned partitions needs.
pub fn is_group_lookup(error: &KafkaError) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed)
}
