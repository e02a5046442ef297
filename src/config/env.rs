//! `PAYBRIDGE_…` environment overrides and `${VAR}` interpolation.
//!
//! Override names: `PAYBRIDGE_` + the key path in upper case, levels joined by `__`:
//! `PAYBRIDGE_KAFKA__BOOTSTRAP_SERVERS`, `PAYBRIDGE_SOURCES__0__ACCOUNT`. Below
//! `kafka.properties` the rest of the name is the librdkafka property with `_` for `.`:
//! `PAYBRIDGE_KAFKA__PROPERTIES__SASL_PASSWORD` sets `sasl.password`. Variables without
//! `__` (such as `PAYBRIDGE_CONFIG`) are not overrides.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::load::{ConfigError, Segment, display_path};

pub const ENV_PREFIX: &str = "PAYBRIDGE_";

/// Applies every override in `env` to `doc`. Values are set as strings; the loader turns
/// them into numbers, booleans or arrays where the schema asks for one. Returns the JSON
/// pointer of each overridden key with the variable that set it.
pub fn apply_overrides(
    doc: &mut Value,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, String> {
    let mut applied = BTreeMap::new();
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let segments = override_segments(rest);
        match set_path(doc, &segments, Value::String(raw.clone())) {
            Ok(pointer) => {
                applied.insert(pointer, var.clone());
            }
            Err(message) => errors.push(ConfigError::new(
                display_path(&segments),
                format!("{message} (from environment variable {var})"),
            )),
        }
    }
    applied
}

fn override_segments(rest: &str) -> Vec<Segment> {
    let parts: Vec<&str> = rest.split("__").collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        let lower = parts[i].to_ascii_lowercase();
        if segments == [Segment::Key("kafka".into()), Segment::Key("properties".into())] {
            let property = parts[i..].join("_").to_ascii_lowercase().replace('_', ".");
            segments.push(Segment::Key(property));
            break;
        }
        match lower.parse::<usize>() {
            Ok(index) => segments.push(Segment::Index(index)),
            Err(_) => segments.push(Segment::Key(lower)),
        }
        i += 1;
    }
    segments
}

fn set_path(doc: &mut Value, segments: &[Segment], value: Value) -> Result<String, String> {
    let Some((last, parents)) = segments.split_last() else {
        return Err("empty key".into());
    };
    let mut node = doc;
    let mut pointer = String::new();
    for (depth, segment) in parents.iter().enumerate() {
        let next_is_index = matches!(segments.get(depth + 1), Some(Segment::Index(_)));
        node = child_mut(node, segment, next_is_index)?;
        pointer.push('/');
        pointer.push_str(&segment.pointer_token());
    }
    match (node, last) {
        (Value::Object(map), Segment::Key(key)) => {
            map.insert(key.clone(), value);
        }
        (Value::Array(items), Segment::Index(i)) if *i < items.len() => items[*i] = value,
        _ => return Err("cannot set this key: its parent is not a table".into()),
    }
    pointer.push('/');
    pointer.push_str(&last.pointer_token());
    Ok(pointer)
}

fn child_mut<'a>(node: &'a mut Value, segment: &Segment, next_is_index: bool) -> Result<&'a mut Value, String> {
    let empty = || {
        if next_is_index { Value::Array(Vec::new()) } else { Value::Object(Map::new()) }
    };
    match (node, segment) {
        (Value::Object(map), Segment::Key(key)) => Ok(map.entry(key.clone()).or_insert_with(empty)),
        (Value::Array(items), Segment::Index(i)) => {
            if *i == items.len() {
                items.push(empty());
            }
            let len = items.len();
            items.get_mut(*i).ok_or_else(|| {
                format!("index {i} is out of range: the file has {len} entries; indexes must be contiguous")
            })
        }
        (_, Segment::Index(_)) => Err("this key is not a list".into()),
        (_, Segment::Key(_)) => Err("this key is not a table".into()),
    }
}

/// Replaces `${VAR}` and `${VAR:-default}` in every string of `doc`; `$$` is a literal `$`.
/// Returns the JSON pointers of the strings that read a variable: their values may be
/// secrets and are never echoed in errors.
pub fn interpolate(doc: &mut Value, env: &BTreeMap<String, String>, errors: &mut Vec<ConfigError>) -> BTreeSet<String> {
    let mut expanded_at = BTreeSet::new();
    walk_strings(doc, &mut Vec::new(), &mut |path, text| match expand(text, env) {
        Ok(expanded) if expanded != text => {
            expanded_at.insert(path.iter().map(|s| format!("/{}", s.pointer_token())).collect());
            Some(expanded)
        }
        Ok(_) => None,
        Err(message) => {
            errors.push(ConfigError::new(display_path(path), message));
            None
        }
    });
    expanded_at
}

fn walk_strings(node: &mut Value, path: &mut Vec<Segment>, visit: &mut dyn FnMut(&[Segment], &str) -> Option<String>) {
    match node {
        Value::String(text) => {
            if let Some(replacement) = visit(path, text) {
                *text = replacement;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Segment::Index(i));
                walk_strings(item, path, visit);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(Segment::Key(key.clone()));
                walk_strings(item, path, visit);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Expands one string. Errors name the variable, never its value.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err("unterminated \"${\" (write \"$$\" for a literal \"$\")".into());
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in \"${{…}}\""));
            }
            match (env.get(name), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(format!("environment variable {name} is not set")),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn expands_variables_defaults_and_escapes() {
        let e = env(&[("PASS", "s3cret")]);
        assert_eq!(expand("${PASS}", &e), Ok("s3cret".into()));
        assert_eq!(expand("a-${MISSING:-dflt}-b", &e), Ok("a-dflt-b".into()));
        assert_eq!(expand("cost $$5 and $x", &e), Ok("cost $5 and $x".into()));
        let err = expand("${NOPE}", &e).err().unwrap_or_default();
        assert!(err.contains("NOPE"), "{err}");
        assert!(expand("${OPEN", &e).is_err());
    }

    #[test]
    fn overrides_nested_keys_lists_and_properties() {
        let mut doc = json!({"kafka": {"topic": "t"}, "sources": [{"kind": "ripplenet", "name": "a"}]});
        let e = env(&[
            ("PAYBRIDGE_KAFKA__BOOTSTRAP_SERVERS", "b:9092"),
            ("PAYBRIDGE_KAFKA__PROPERTIES__SASL_PASSWORD", "pw"),
            ("PAYBRIDGE_SOURCES__0__ACCOUNT", "acme"),
            ("PAYBRIDGE_CONFIG", "/etc/paybridge.toml"),
            ("OTHER", "x"),
        ]);
        let mut errors = Vec::new();
        let applied = apply_overrides(&mut doc, &e, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(doc["kafka"]["bootstrap_servers"], "b:9092");
        assert_eq!(doc["kafka"]["properties"]["sasl.password"], "pw");
        assert_eq!(doc["sources"][0]["account"], "acme");
        assert_eq!(applied.len(), 3);
        assert_eq!(applied.get("/sources/0/account").map(String::as_str), Some("PAYBRIDGE_SOURCES__0__ACCOUNT"));
    }

    #[test]
    fn out_of_range_index_is_an_error_naming_the_variable() {
        let mut doc = json!({"sources": []});
        let mut errors = Vec::new();
        apply_overrides(&mut doc, &env(&[("PAYBRIDGE_SOURCES__3__NAME", "x")]), &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("PAYBRIDGE_SOURCES__3__NAME"), "{}", errors[0]);
    }
}
