//! Everything that talks to Kafka.

pub mod kafka;
pub mod topics;
