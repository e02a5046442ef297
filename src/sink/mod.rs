//! Everything that talks to Kafka.

pub mod dlq;
pub mod errors;
pub mod kafka;
pub mod topics;
