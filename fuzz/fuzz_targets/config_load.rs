//! Any config text and environment: errors, never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line, when it looks like NAME=VALUE pairs, is the environment.
    let (env_line, body) = text.split_once('\n').unwrap_or(("", &text));
    let env: BTreeMap<String, String> = env_line
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = paybridge::config::load(body, &env);
});
