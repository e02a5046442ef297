//! The nesting depth of a JSON text, measured before parsing it, so a deeply nested body
//! costs one linear scan and no recursion.

/// True when `body` opens more than `max` arrays or objects inside each other. Brackets
/// inside strings do not count; the text need not be valid JSON (the parser judges that).
pub fn too_deep(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::too_deep;

    #[test]
    fn counts_nesting_outside_strings() {
        assert!(!too_deep(br#"{"a":{"b":[1,2]}}"#, 3));
        assert!(too_deep(br#"{"a":{"b":[1,2]}}"#, 2));
        assert!(!too_deep(br#"{"a":"[[[[{{{{\"[[["}"#, 1));
        assert!(too_deep(&[b'['; 10_000], 64));
        assert!(!too_deep(b"]]]]}}}", 1));
        assert!(!too_deep(b"", 1));
    }
}
