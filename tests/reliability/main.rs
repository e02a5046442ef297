//! Failures: chaos, bad answers, shutdown, fatal producer errors, topics that refuse, SASL, secrets, memory under read-ahead and reconcile, several replicas.

#[path = "../support/mod.rs"]
mod support;

mod bad_answers;
mod bridge_shutdown;
mod chaos;
mod cluster;
mod doctor;
mod failure_matrix;
mod producer_fatal;
mod read_ahead_memory;
mod reconcile_memory;
mod sasl;
mod secret_hygiene;
mod secured_kafka;
mod three_nodes;
mod topic_durability;
mod topic_refusals;
