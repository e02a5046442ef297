//! What users rely on beside the events: the schemas and their compatibility, the
//! configuration and its generated reference, packaging, the code's layers.

#[path = "../support/mod.rs"]
mod support;

mod config;
mod layers;
mod packaging;
mod schema_compat;
mod schemas;
