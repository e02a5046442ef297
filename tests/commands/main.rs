//! The command line: run, the operator commands, the admin endpoints, the dashboard, the demo.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod checkout_backfill;
mod cursor_command;
mod dashboard;
mod demo;
mod dlq_command;
mod doctor_command;
mod reconcile_command;
mod run_command;
mod schema_register;
mod tail_command;
mod trace_command;
