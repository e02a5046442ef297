//! Reading provider answers with a bound on memory: a provider that ignores `size` or sends
//! an endless body cannot make paybridge buffer it all.

use serde::de::DeserializeOwned;

/// Reads at most `limit` bytes of the body; true in the second field when more was sent.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The leading elements of a JSON array, at most `max_items`, from a body that may have been
/// cut off: the elements complete in `body` are returned and the rest is left (for the next
/// poll). Err when `body` does not start a JSON array or an element is malformed.
pub fn array_prefix<T: DeserializeOwned>(body: &[u8], max_items: usize) -> Result<Vec<T>, String> {
    let skip_ws = |mut at: usize| {
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        at
    };
    let mut at = skip_ws(0);
    if body.get(at) != Some(&b'[') {
        return Err("expected a JSON array".into());
    }
    at = skip_ws(at + 1);
    let mut items = Vec::new();
    if body.get(at) == Some(&b']') {
        return Ok(items);
    }
    while items.len() < max_items {
        let mut stream = serde_json::Deserializer::from_slice(&body[at..]).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                items.push(value);
                at = skip_ws(at + stream.byte_offset());
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(format!("malformed array element: {e}")),
            None => break,
        }
        match body.get(at) {
            Some(b',') => at = skip_ws(at + 1),
            Some(b']') => break,
            None => break,
            Some(other) => return Err(format!("unexpected {:?} between array elements", char::from(*other))),
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn array_prefix(body: &[u8], max: usize) -> Result<Vec<Value>, String> {
        super::array_prefix(body, max)
    }

    #[test]
    fn whole_arrays_parse() {
        assert_eq!(array_prefix(b" [ ] ", 10), Ok(vec![]));
        assert_eq!(array_prefix(br#"[{"a":1}, {"b":[2,3]} ]"#, 10), Ok(vec![json!({"a":1}), json!({"b":[2,3]})]));
    }

    #[test]
    fn at_most_max_items_and_a_cut_off_tail_is_left() {
        assert_eq!(array_prefix(br#"[1,2,3,4]"#, 2), Ok(vec![json!(1), json!(2)]));
        assert_eq!(array_prefix(br#"[{"a":1},{"b":"cut o"#, 10), Ok(vec![json!({"a":1})]));
        assert_eq!(array_prefix(br#"[{"a":1},"#, 10), Ok(vec![json!({"a":1})]));
    }

    #[test]
    fn not_an_array_or_malformed_is_an_error() {
        assert!(array_prefix(br#"{"a":1}"#, 10).is_err());
        assert!(array_prefix(b"", 10).is_err());
        assert!(array_prefix(br#"[1 2]"#, 10).is_err());
        assert!(array_prefix(br#"[1,}]"#, 10).is_err());
    }
}
