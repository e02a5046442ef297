//! Any provider answer body through every response parser (RippleNet poll pages and
//! acknowledgement answers, Checkout receive / ack / period pages, Payments Direct search
//! pages, error bodies): a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge::event::RawJson;
use paybridge::http::body::array_prefix;
use paybridge::http::client::{error_code, error_detail};
use paybridge::sources::checkout::api::{parse_ack_failed, parse_history, parse_receive};
use paybridge::sources::payments_direct::api::parse_search;
use paybridge::sources::ripplenet::api::AckResult;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a page size, as a provider answering more than asked would.
    let size = usize::from(data.first().copied().unwrap_or(1)) + 1;
    if let Ok(items) = array_prefix::<RawJson>(data, size) {
        assert!(items.len() <= size, "a poll never takes more than asked");
    }
    let _ = error_code(data);
    let _ = error_detail(data);
    let _ = AckResult::parse(data);
    if let Ok(messages) = parse_receive(data, size) {
        assert!(messages.len() <= size);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = parse_ack_failed(&value);
    let _ = parse_history(&value);
    if let Ok(page) = parse_search(value) {
        assert!(page.last_page_token.as_deref() != Some(""), "an empty token means the last page");
    }
});
