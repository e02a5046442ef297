//! Any webhook body through both intake parsers and the depth check: a payload or a reason,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge::intake::json_depth::too_deep;
use paybridge::sources::payments_direct::webhook::{Envelope, envelope};
use paybridge::sources::ripplenet::thin_payload;

fuzz_target!(|data: &[u8]| {
    let _ = thin_payload(data);
    if let Ok(Envelope::StateTransition { payment_id, .. }) = envelope(data) {
        assert!(uuid::Uuid::parse_str(&payment_id).is_ok(), "only UUIDs reach the fetch's URL");
    }
    let deep = too_deep(data, 8);
    if !deep {
        assert!(!too_deep(data, 9), "a deeper limit admits what a shallower one does");
    }
});
