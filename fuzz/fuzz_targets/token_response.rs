//! Any token endpoint answer: a bearer token with a lifetime inside the documented bounds,
//! or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge::http::oauth::{MAX_TOKEN_LIFETIME, parse_token_response, token_error_text};

fuzz_target!(|data: &[u8]| {
    if let Ok((token, lifetime)) = parse_token_response(data) {
        assert!(!token.is_empty());
        assert!(lifetime >= std::time::Duration::from_secs(1) && lifetime <= MAX_TOKEN_LIFETIME);
        // The cache adds the lifetime to now: it must not overflow.
        let _ = std::time::Instant::now() + lifetime;
    }
    assert!(token_error_text(data).chars().count() <= 300);
});
