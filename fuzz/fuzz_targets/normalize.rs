//! Any provider payload through every normalizer: an event or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge::event::RawJson;
use paybridge::normalize::{checkout, payments_direct, ripplenet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(raw) = RawJson::parse(text) else { return };
    let value = raw.to_value();
    let now = chrono::Utc::now();
    if let Ok(event) = ripplenet::notification("acct", &raw, now) {
        let _ = serde_json::to_vec(&event);
        let _ = event.key();
    }
    if let Ok(event) = checkout::message("acct", &raw, now) {
        let _ = serde_json::to_vec(&event);
    }
    let _ = payments_direct::payment("acct", &value, payments_direct::Via::default(), now);
});
