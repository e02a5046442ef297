//! The webhook intake: protections, TLS, floods, bad input, webhooks calling upstream.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod intake_flood;
mod intake_tls;
mod webhook_upstream;
