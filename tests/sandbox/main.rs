//! The provider sandbox itself: each simulated API and its traffic.

#[path = "../support/mod.rs"]
mod support;

mod sandbox_checkout;
mod sandbox_payments_direct;
mod sandbox_ripplenet;
mod sandbox_traffic;
