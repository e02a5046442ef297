//! paybridge: moves payment-provider notifications into Kafka. Nothing is acknowledged
//! upstream before the broker has confirmed the event.

pub mod ack;
pub mod admin;
pub mod backfill;
pub mod bridge;
pub mod cluster;
pub mod config;
pub mod cursor_command;
pub mod dead_letter;
pub mod doctor;
pub mod event;
pub mod health;
pub mod http;
pub mod intake;
pub mod log_limit;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod progress;
pub mod reconcile;
pub mod registry;
pub mod schemas;
pub mod signal;
pub mod sink;
pub mod sources;
pub mod tail;
pub mod trace;
pub mod version;

pub use bridge::{RunError, run, run_until_signal};
pub use signal::wait_for_signal;
pub use version::{COMMIT, VERSION};
