//! Everything that talks to Kafka.

pub mod cursor;
pub mod dlq;
pub mod errors;
pub mod fatal;
pub mod kafka;
pub mod partition;
pub mod published;
pub mod publisher;
pub mod refusals;
pub mod scan;
pub mod state;
pub mod topics;
pub mod transaction;
pub mod wire;
