//! Everything that talks to Kafka.

pub mod access;
pub mod credentials;
pub mod cursor;
pub mod describe;
pub mod dlq;
pub mod durability;
pub mod errors;
pub mod fatal;
pub mod kafka;
pub mod partition;
pub mod published;
pub mod publisher;
pub mod reader;
pub mod refusals;
pub mod scan;
pub mod state;
pub mod topics;
pub mod transaction;
pub mod wire;
