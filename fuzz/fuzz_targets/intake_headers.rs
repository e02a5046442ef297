//! Any value of the headers the intake reads (signature, timestamp, X-Forwarded-For, token):
//! a decision, never a panic.
#![no_main]

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use paybridge::config::IpNetwork;
use paybridge::intake::auth::{decode_signature, parse_timestamp};
use paybridge::intake::client_ip::client_ip;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(mac) = decode_signature(text) {
            assert_eq!(mac.len(), 32);
        }
        let _ = parse_timestamp(text);
        let _ = text.parse::<IpNetwork>();
    }
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value);
        let proxies: Vec<IpNetwork> = ["10.0.0.0/8", "::1"].iter().filter_map(|n| n.parse().ok()).collect();
        let peer = IpAddr::from([10, 0, 0, 1]);
        if let Some(ip) = client_ip(peer, &headers, &proxies) {
            let _ = ip.is_loopback();
        }
    }
});
