//! Any provider payload through every normalizer: an event or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge::normalize::{checkout, payments_direct, ripplenet};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let now = chrono::Utc::now();
    if let Ok(event) = ripplenet::notification("acct", &value, now) {
        let _ = serde_json::to_vec(&event);
        let _ = event.key();
    }
    if let Ok(event) = checkout::message("acct", &value, now) {
        let _ = serde_json::to_vec(&event);
    }
    let _ = payments_direct::payment("acct", &value, payments_direct::Via::default(), now);
});
