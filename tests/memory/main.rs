//! The pipeline's memory bound under a broker outage. Alone in its binary: it measures its own process's memory, which no other test may share.

#[path = "../support/mod.rs"]
mod support;

mod backpressure_memory;
