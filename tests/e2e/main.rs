//! End-to-end: each provider into Kafka through paybridge, on a real broker and the provider sandbox.

#[path = "../support/mod.rs"]
mod support;

mod checkout_api;
mod checkout_auth;
mod checkout_e2e;
mod cursor;
mod exactly_once;
mod history_shapes;
mod kafka_roundtrip;
mod payments_direct_e2e;
mod pipeline;
mod ripplenet_e2e;
mod ripplenet_runtime;
mod schema_registry_run;
