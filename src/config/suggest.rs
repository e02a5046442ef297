//! "Did you mean …?" for an unknown key: the keys the configuration schema allows at the
//! same place, and the one closest to what was written.

use serde_json::Value;

use super::load::Segment;

/// The key allowed next to `unknown` (at `at` in `doc`) that is closest to it, when one is
/// close enough to be a misspelling.
pub fn closest_key(schema: &Value, doc: &Value, at: &[Segment], unknown: &str) -> Option<String> {
    let allowed = allowed_keys(schema, doc, at);
    let wanted = unknown.to_ascii_lowercase().replace('-', "_");
    allowed
        .into_iter()
        .map(|key| (strsim::damerau_levenshtein(&wanted, &key), key))
        .filter(|(distance, key)| *distance <= (key.chars().count() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// The property names the schema allows for the object at `at` in `doc`.
fn allowed_keys(schema: &Value, doc: &Value, at: &[Segment]) -> Vec<String> {
    let mut nodes = vec![schema];
    let mut instance = Some(doc);
    for segment in at {
        let (next_instance, next_nodes): (Option<&Value>, Vec<&Value>) = match segment {
            Segment::Key(key) => (
                instance.and_then(|i| i.get(key)),
                expand(schema, &nodes, instance).into_iter().filter_map(|n| n.get("properties")?.get(key)).collect(),
            ),
            Segment::Index(index) => (
                instance.and_then(|i| i.get(*index)),
                expand(schema, &nodes, instance).into_iter().filter_map(|n| n.get("items")).collect(),
            ),
        };
        nodes = next_nodes;
        instance = next_instance;
    }
    let mut keys: Vec<String> = expand(schema, &nodes, instance)
        .into_iter()
        .filter_map(|n| n.get("properties")?.as_object())
        .flat_map(|properties| properties.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `nodes` with their `$ref`s followed, their `anyOf`/`oneOf` variants, and the `then` of
/// each `allOf` `if` whose constants `instance` matches (a source's `kind`).
fn expand<'a>(root: &'a Value, nodes: &[&'a Value], instance: Option<&Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut queue: Vec<&Value> = nodes.to_vec();
    while let Some(node) = queue.pop() {
        if out.len() > 64 {
            break; // a schema this module does not understand: no suggestion rather than a loop
        }
        if let Some(target) =
            node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p))
        {
            queue.push(target);
        }
        for key in ["anyOf", "oneOf"] {
            queue.extend(node.get(key).and_then(Value::as_array).into_iter().flatten());
        }
        for part in node.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            match (part.get("if"), part.get("then")) {
                (Some(condition), Some(then)) if matches(condition, instance) => queue.push(then),
                (Some(_), _) => {}
                (None, _) => queue.push(part),
            }
        }
        out.push(node);
    }
    out
}

/// Whether `instance` has every `const` the `if` schema names (no instance: yes).
fn matches(condition: &Value, instance: Option<&Value>) -> bool {
    let Some(instance) = instance else { return true };
    let Some(properties) = condition.get("properties").and_then(Value::as_object) else { return true };
    properties.iter().all(|(key, rule)| match rule.get("const") {
        Some(wanted) => instance.get(key) == Some(wanted),
        None => true,
    })
}
