//! BACKWARD compatibility of two JSON Schemas as a Confluent Schema Registry judges it
//! (its `json.diff` rules): the new schema must accept every document the old one
//! accepted. Differences carry Confluent's names, so a refusal reads like the registry's.
//!
//! Where this checker is unsure it is stricter than Confluent, never more lenient: what a
//! real registry refuses, this refuses. The rule that matters most for an evolving event:
//! a property added to an *open* object (no `additionalProperties: false`) is refused,
//! because old data may already carry that name with any type; added to a closed object it
//! is accepted, and removed from a closed object it is refused.

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};

/// One difference between the old and the new schema, at a path in the new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub kind: &'static str,
}

impl Difference {
    pub fn is_compatible(&self) -> bool {
        COMPATIBLE.contains(&self.kind)
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difference{{jsonPath='{}', type={}}}", self.path, self.kind)
    }
}

/// Confluent's compatible difference types (the ones this checker produces).
const COMPATIBLE: &[&str] = &[
    "ID_CHANGED",
    "DESCRIPTION_CHANGED",
    "TITLE_CHANGED",
    "DEFAULT_CHANGED",
    "TYPE_EXTENDED",
    "MAX_LENGTH_INCREASED",
    "MAX_LENGTH_REMOVED",
    "MIN_LENGTH_DECREASED",
    "MIN_LENGTH_REMOVED",
    "PATTERN_REMOVED",
    "MAXIMUM_INCREASED",
    "MAXIMUM_REMOVED",
    "MINIMUM_DECREASED",
    "MINIMUM_REMOVED",
    "EXCLUSIVE_MAXIMUM_INCREASED",
    "EXCLUSIVE_MAXIMUM_REMOVED",
    "EXCLUSIVE_MINIMUM_DECREASED",
    "EXCLUSIVE_MINIMUM_REMOVED",
    "MULTIPLE_OF_REMOVED",
    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
    "REQUIRED_ATTRIBUTE_REMOVED",
    "MAX_PROPERTIES_INCREASED",
    "MAX_PROPERTIES_REMOVED",
    "MIN_PROPERTIES_DECREASED",
    "MIN_PROPERTIES_REMOVED",
    "ADDITIONAL_PROPERTIES_ADDED",
    "ADDITIONAL_PROPERTIES_EXTENDED",
    "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "MAX_ITEMS_INCREASED",
    "MAX_ITEMS_REMOVED",
    "MIN_ITEMS_DECREASED",
    "MIN_ITEMS_REMOVED",
    "UNIQUE_ITEMS_REMOVED",
    "ENUM_ARRAY_EXTENDED",
    "COMBINED_TYPE_EXTENDED",
    "SUM_TYPE_EXTENDED",
];

/// Every difference, compatible or not.
pub fn differences(old: &Value, new: &Value) -> Vec<Difference> {
    let mut ctx =
        Context { old_root: old, new_root: new, path: "#".to_owned(), found: Vec::new(), seen: HashSet::new() };
    ctx.compare(old, new);
    ctx.found
}

/// The differences that make `new` unable to read what `old` wrote (empty: compatible).
pub fn incompatibilities(old: &Value, new: &Value) -> Vec<Difference> {
    differences(old, new).into_iter().filter(|d| !d.is_compatible()).collect()
}

struct Context<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    path: String,
    found: Vec<Difference>,
    /// Pairs of `$ref`s being compared, so recursive schemas end.
    seen: HashSet<(String, String)>,
}

/// What a schema is, after `$ref` and multi-type `type` arrays are unfolded.
enum Shape {
    /// Accepts everything (`true`, `{}`, annotations only).
    Any,
    /// Accepts nothing (`false`).
    Nothing,
    /// `anyOf` / `oneOf` / `allOf` with its branches.
    Combined(&'static str, Vec<Value>),
    /// One `type` (or none, with `enum`/`const` or type-specific keywords).
    Single(Value),
}

const ANNOTATIONS: &[&str] =
    &["$schema", "$id", "$comment", "$defs", "definitions", "title", "description", "default", "examples", "format"];

fn shape(schema: &Value) -> Shape {
    let map = match schema {
        Value::Bool(true) => return Shape::Any,
        Value::Bool(false) => return Shape::Nothing,
        Value::Object(map) => map,
        _ => return Shape::Any,
    };
    for kind in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(branches)) = map.get(kind) {
            let mut rest = map.clone();
            rest.remove(kind);
            // Keywords beside the combinator apply to every branch.
            let shared: Map<String, Value> =
                rest.into_iter().filter(|(k, _)| !ANNOTATIONS.contains(&k.as_str())).collect();
            let branches = branches.iter().map(|b| merged(b, &shared)).collect();
            return Shape::Combined(kind, branches);
        }
    }
    if let Some(Value::Array(types)) = map.get("type") {
        if types.len() == 1 {
            let mut one = map.clone();
            one.insert("type".into(), types[0].clone());
            return Shape::Single(Value::Object(one));
        }
        let branches = types
            .iter()
            .map(|t| {
                let mut one = map.clone();
                one.insert("type".into(), t.clone());
                Value::Object(one)
            })
            .collect();
        return Shape::Combined("anyOf", branches);
    }
    if map.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) {
        return Shape::Any;
    }
    Shape::Single(schema.clone())
}

fn merged(branch: &Value, shared: &Map<String, Value>) -> Value {
    if shared.is_empty() {
        return branch.clone();
    }
    match branch {
        Value::Object(map) => {
            let mut all = shared.clone();
            all.extend(map.clone());
            Value::Object(all)
        }
        other => other.clone(),
    }
}

/// The declared or implied type of a single-typed schema.
fn type_of(map: &Map<String, Value>) -> Option<String> {
    if let Some(Value::String(t)) = map.get("type") {
        return Some(t.clone());
    }
    let has = |keys: &[&str]| keys.iter().any(|k| map.contains_key(*k));
    if has(&["properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties"]) {
        Some("object".into())
    } else if has(&["items", "prefixItems", "minItems", "maxItems", "uniqueItems"]) {
        Some("array".into())
    } else if has(&["pattern", "minLength", "maxLength"]) {
        Some("string".into())
    } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) {
        Some("number".into())
    } else {
        None
    }
}

/// `enum` or `const` as one list of allowed values.
fn allowed_values(map: &Map<String, Value>) -> Option<Vec<Value>> {
    if let Some(value) = map.get("const") {
        return Some(vec![value.clone()]);
    }
    map.get("enum").and_then(Value::as_array).cloned()
}

impl Context<'_> {
    fn add(&mut self, kind: &'static str) {
        self.found.push(Difference { path: self.path.clone(), kind });
    }

    fn add_at(&mut self, keyword: &str, kind: &'static str) {
        self.found.push(Difference { path: format!("{}/{keyword}", self.path), kind });
    }

    fn is_compatible(&self) -> bool {
        self.found.iter().all(Difference::is_compatible)
    }

    fn sub(&self) -> Self {
        Context {
            old_root: self.old_root,
            new_root: self.new_root,
            path: self.path.clone(),
            found: Vec::new(),
            seen: self.seen.clone(),
        }
    }

    fn enter<R>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let saved = self.path.clone();
        self.path = format!("{saved}/{segment}");
        let result = f(self);
        self.path = saved;
        result
    }

    fn compare(&mut self, old: &Value, new: &Value) {
        let (old, old_ref) = resolve(self.old_root, old);
        let (new, new_ref) = resolve(self.new_root, new);
        if let (Some(o), Some(n)) = (&old_ref, &new_ref)
            && !self.seen.insert((o.clone(), n.clone()))
        {
            return;
        }
        match (shape(&old), shape(&new)) {
            (_, Shape::Any) | (Shape::Nothing, _) => {}
            (Shape::Any, _) | (_, Shape::Nothing) => self.add("TYPE_CHANGED"),
            (Shape::Combined(o_kind, o_branches), Shape::Combined(n_kind, n_branches)) => {
                self.compare_combined(o_kind, &o_branches, n_kind, &n_branches)
            }
            (Shape::Single(o), Shape::Combined(kind, branches)) => {
                if kind == "allOf" && branches.len() != 1 {
                    self.add("TYPE_CHANGED");
                    return;
                }
                for branch in &branches {
                    let mut sub = self.sub();
                    sub.compare(&o, branch);
                    if sub.is_compatible() {
                        self.found.extend(sub.found);
                        if branches.len() > 1 {
                            self.add("SUM_TYPE_EXTENDED");
                        }
                        return;
                    }
                }
                self.add("TYPE_CHANGED");
            }
            (Shape::Combined(_, branches), Shape::Single(n)) => {
                if branches.len() == 1 {
                    self.compare(&branches[0], &n);
                } else {
                    self.add("TYPE_CHANGED");
                }
            }
            (Shape::Single(o), Shape::Single(n)) => self.compare_single(&o, &n),
        }
    }

    fn compare_combined(&mut self, o_kind: &str, old: &[Value], n_kind: &str, new: &[Value]) {
        if o_kind != n_kind {
            let extended = n_kind == "anyOf" || (n_kind == "oneOf" && old.len() == 1);
            if !extended {
                self.add("COMBINED_TYPE_CHANGED");
                return;
            }
            self.add("COMBINED_TYPE_EXTENDED");
        }
        match (old.len().cmp(&new.len()), n_kind) {
            (std::cmp::Ordering::Less, "allOf") => self.add("PRODUCT_TYPE_EXTENDED"),
            (std::cmp::Ordering::Less, _) => self.add("SUM_TYPE_EXTENDED"),
            (std::cmp::Ordering::Greater, "allOf") => self.add("PRODUCT_TYPE_NARROWED"),
            (std::cmp::Ordering::Greater, _) => self.add("SUM_TYPE_NARROWED"),
            _ => {}
        }
        // Which new branch can read what each old branch accepted.
        let mut edges: Vec<Vec<(usize, Vec<Difference>)>> = Vec::with_capacity(old.len());
        for (i, o) in old.iter().enumerate() {
            let mut row = Vec::new();
            for (j, n) in new.iter().enumerate() {
                let mut sub = self.sub();
                sub.enter(&format!("{o_kind}/{i}"), |s| s.compare(o, n));
                if sub.is_compatible() {
                    row.push((j, sub.found));
                }
            }
            edges.push(row);
        }
        let matched = maximum_matching(&edges, new.len());
        for (i, j) in matched.iter().enumerate() {
            if let Some(j) = j
                && let Some((_, found)) = edges[i].iter().find(|(k, _)| k == j)
            {
                self.found.extend(found.iter().cloned());
            }
        }
        let size = matched.iter().filter(|m| m.is_some()).count();
        if size < old.len().min(new.len()) {
            self.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED");
        }
    }

    fn compare_single(&mut self, old: &Value, new: &Value) {
        let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
            self.add("TYPE_CHANGED");
            return;
        };
        let (o_type, n_type) = (type_of(o), type_of(n));
        match (o_type.as_deref(), n_type.as_deref()) {
            (a, b) if a == b => {}
            (Some("integer"), Some("number")) => self.add("TYPE_EXTENDED"),
            _ => {
                self.add("TYPE_CHANGED");
                return;
            }
        }
        for (keyword, kind) in [
            ("$id", "ID_CHANGED"),
            ("title", "TITLE_CHANGED"),
            ("description", "DESCRIPTION_CHANGED"),
            ("default", "DEFAULT_CHANGED"),
        ] {
            if o.get(keyword) != n.get(keyword) {
                self.add(kind);
            }
        }
        self.compare_enum(o, n);
        match n_type.as_deref() {
            Some("string") => self.compare_string(o, n),
            Some("number") | Some("integer") => self.compare_number(o, n),
            Some("object") => self.compare_object(o, n),
            Some("array") => self.compare_array(o, n),
            _ => {}
        }
    }

    fn compare_enum(&mut self, o: &Map<String, Value>, n: &Map<String, Value>) {
        match (allowed_values(o), allowed_values(n)) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => self.add("TYPE_CHANGED"),
            (Some(old), Some(new)) => {
                let kept = old.iter().all(|v| new.contains(v));
                if kept && new.len() > old.len() {
                    self.add("ENUM_ARRAY_EXTENDED");
                } else if !kept && new.iter().all(|v| old.contains(v)) {
                    self.add("ENUM_ARRAY_NARROWED");
                } else if !kept {
                    self.add("ENUM_ARRAY_CHANGED");
                }
            }
        }
    }

    /// A numeric limit: `kinds` names its addition, removal, increase and decrease (which
    /// of them are compatible is Confluent's list).
    fn compare_limit(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        keyword: &str,
        kinds: [&'static str; 4],
    ) {
        let [added, removed, increased, decreased] = kinds;
        let (old, new) = (o.get(keyword).and_then(Value::as_f64), n.get(keyword).and_then(Value::as_f64));
        match (old, new) {
            (None, Some(_)) => self.add_at(keyword, added),
            (Some(_), None) => self.add_at(keyword, removed),
            (Some(a), Some(b)) if b > a => self.add_at(keyword, increased),
            (Some(a), Some(b)) if b < a => self.add_at(keyword, decreased),
            _ => {}
        }
    }

    fn compare_string(&mut self, o: &Map<String, Value>, n: &Map<String, Value>) {
        self.compare_limit(
            o,
            n,
            "maxLength",
            ["MAX_LENGTH_ADDED", "MAX_LENGTH_REMOVED", "MAX_LENGTH_INCREASED", "MAX_LENGTH_DECREASED"],
        );
        self.compare_limit(
            o,
            n,
            "minLength",
            ["MIN_LENGTH_ADDED", "MIN_LENGTH_REMOVED", "MIN_LENGTH_INCREASED", "MIN_LENGTH_DECREASED"],
        );
        match (o.get("pattern"), n.get("pattern")) {
            (None, Some(_)) => self.add_at("pattern", "PATTERN_ADDED"),
            (Some(_), None) => self.add_at("pattern", "PATTERN_REMOVED"),
            (Some(a), Some(b)) if a != b => self.add_at("pattern", "PATTERN_CHANGED"),
            _ => {}
        }
    }

    fn compare_number(&mut self, o: &Map<String, Value>, n: &Map<String, Value>) {
        self.compare_limit(
            o,
            n,
            "maximum",
            ["MAXIMUM_ADDED", "MAXIMUM_REMOVED", "MAXIMUM_INCREASED", "MAXIMUM_DECREASED"],
        );
        self.compare_limit(
            o,
            n,
            "minimum",
            ["MINIMUM_ADDED", "MINIMUM_REMOVED", "MINIMUM_INCREASED", "MINIMUM_DECREASED"],
        );
        self.compare_limit(
            o,
            n,
            "exclusiveMaximum",
            [
                "EXCLUSIVE_MAXIMUM_ADDED",
                "EXCLUSIVE_MAXIMUM_REMOVED",
                "EXCLUSIVE_MAXIMUM_INCREASED",
                "EXCLUSIVE_MAXIMUM_DECREASED",
            ],
        );
        self.compare_limit(
            o,
            n,
            "exclusiveMinimum",
            [
                "EXCLUSIVE_MINIMUM_ADDED",
                "EXCLUSIVE_MINIMUM_REMOVED",
                "EXCLUSIVE_MINIMUM_INCREASED",
                "EXCLUSIVE_MINIMUM_DECREASED",
            ],
        );
        match (o.get("multipleOf").and_then(Value::as_f64), n.get("multipleOf").and_then(Value::as_f64)) {
            (None, Some(_)) => self.add_at("multipleOf", "MULTIPLE_OF_ADDED"),
            (Some(_), None) => self.add_at("multipleOf", "MULTIPLE_OF_REMOVED"),
            // Strict: only a divisor of the old step accepts everything the old one did,
            // and Confluent checks that too; any change is refused here.
            (Some(a), Some(b)) if a != b => self.add_at("multipleOf", "MULTIPLE_OF_CHANGED"),
            _ => {}
        }
    }

    fn compare_object(&mut self, o: &Map<String, Value>, n: &Map<String, Value>) {
        let empty = Map::new();
        let o_props = o.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let n_props = n.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let (o_req, n_req) = (required(o), required(n));
        let has_default = |s: &Value| s.get("default").is_some();

        for name in o_props.keys() {
            let Some(new_schema) = n_props.get(name) else { continue };
            let (was, is) = (o_req.contains(name), n_req.contains(name));
            if was && !is {
                self.add_at(&format!("required/{name}"), "REQUIRED_ATTRIBUTE_REMOVED");
            } else if !was && is {
                let kind = if has_default(new_schema) {
                    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED"
                } else {
                    "REQUIRED_ATTRIBUTE_ADDED"
                };
                self.add_at(&format!("required/{name}"), kind);
            }
        }
        // A name required without being a property in the new schema is a new constraint.
        for name in &n_req {
            if !o_req.contains(name) && !n_props.contains_key(name) && !o_props.contains_key(name) {
                self.add_at(&format!("required/{name}"), "REQUIRED_ATTRIBUTE_ADDED");
            }
        }

        let o_open = is_open(o);
        let n_open = is_open(n);
        let mut names: Vec<&String> = o_props.keys().chain(n_props.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let segment = format!("properties/{name}");
            match (o_props.get(name), n_props.get(name)) {
                (Some(old_schema), None) => {
                    let kind = if n_open {
                        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL"
                    } else if old_schema == &Value::Bool(false) {
                        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                    } else {
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                    };
                    self.add_at(&segment, kind);
                }
                (None, Some(new_schema)) => {
                    let kind = if o_open {
                        if matches!(shape(new_schema), Shape::Any) {
                            "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                        } else {
                            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
                        }
                    } else if n_req.contains(name) {
                        if has_default(new_schema) {
                            "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
                        } else {
                            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
                        }
                    } else {
                        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
                    };
                    self.add_at(&segment, kind);
                }
                (Some(old_schema), Some(new_schema)) => self.enter(&segment, |s| s.compare(old_schema, new_schema)),
                (None, None) => {}
            }
        }

        self.enter("additionalProperties", |s| {
            let (old_ap, new_ap) = (o.get("additionalProperties"), n.get("additionalProperties"));
            let permits = |ap: Option<&Value>| ap != Some(&Value::Bool(false));
            fn schema_of(ap: Option<&Value>) -> Option<&Value> {
                ap.filter(|v| v.is_object())
            }
            if permits(old_ap) != permits(new_ap) {
                s.add(if permits(new_ap) { "ADDITIONAL_PROPERTIES_ADDED" } else { "ADDITIONAL_PROPERTIES_REMOVED" });
            } else if let (None, Some(_)) = (schema_of(old_ap), schema_of(new_ap)) {
                s.add("ADDITIONAL_PROPERTIES_NARROWED");
            } else if let (Some(_), None) = (schema_of(old_ap), schema_of(new_ap)) {
                s.add("ADDITIONAL_PROPERTIES_EXTENDED");
            } else if let (Some(a), Some(b)) = (schema_of(old_ap), schema_of(new_ap)) {
                s.compare(a, b);
            }
        });
        if o.get("patternProperties") != n.get("patternProperties") {
            // Partially open content models: strict, any change is refused.
            self.add_at("patternProperties", "PATTERN_PROPERTIES_CHANGED");
        }
        self.compare_limit(
            o,
            n,
            "maxProperties",
            ["MAX_PROPERTIES_ADDED", "MAX_PROPERTIES_REMOVED", "MAX_PROPERTIES_INCREASED", "MAX_PROPERTIES_DECREASED"],
        );
        self.compare_limit(
            o,
            n,
            "minProperties",
            ["MIN_PROPERTIES_ADDED", "MIN_PROPERTIES_REMOVED", "MIN_PROPERTIES_INCREASED", "MIN_PROPERTIES_DECREASED"],
        );
        for keyword in
            ["dependentRequired", "dependentSchemas", "dependencies", "propertyNames", "unevaluatedProperties"]
        {
            if o.get(keyword) != n.get(keyword) && n.get(keyword).is_some() {
                self.add_at(keyword, "DEPENDENCY_CHANGED");
            }
        }
    }

    fn compare_array(&mut self, o: &Map<String, Value>, n: &Map<String, Value>) {
        self.compare_limit(
            o,
            n,
            "maxItems",
            ["MAX_ITEMS_ADDED", "MAX_ITEMS_REMOVED", "MAX_ITEMS_INCREASED", "MAX_ITEMS_DECREASED"],
        );
        self.compare_limit(
            o,
            n,
            "minItems",
            ["MIN_ITEMS_ADDED", "MIN_ITEMS_REMOVED", "MIN_ITEMS_INCREASED", "MIN_ITEMS_DECREASED"],
        );
        let unique = |m: &Map<String, Value>| m.get("uniqueItems") == Some(&Value::Bool(true));
        match (unique(o), unique(n)) {
            (false, true) => self.add_at("uniqueItems", "UNIQUE_ITEMS_ADDED"),
            (true, false) => self.add_at("uniqueItems", "UNIQUE_ITEMS_REMOVED"),
            _ => {}
        }
        if o.get("prefixItems") != n.get("prefixItems") {
            let empty = Vec::new();
            let old = o.get("prefixItems").and_then(Value::as_array).unwrap_or(&empty);
            let new = n.get("prefixItems").and_then(Value::as_array).unwrap_or(&empty);
            if old.len() != new.len() {
                self.add_at("prefixItems", "ITEMS_CHANGED");
            }
            for (i, (a, b)) in old.iter().zip(new).enumerate() {
                self.enter(&format!("prefixItems/{i}"), |s| s.compare(a, b));
            }
        }
        let any = Value::Bool(true);
        let old_items = o.get("items").unwrap_or(&any);
        let new_items = n.get("items").unwrap_or(&any);
        self.enter("items", |s| s.compare(old_items, new_items));
    }
}

fn is_open(map: &Map<String, Value>) -> bool {
    let pattern = map.get("patternProperties").and_then(Value::as_object).is_some_and(|p| !p.is_empty());
    pattern || map.get("additionalProperties") != Some(&Value::Bool(false))
}

/// Follows local `$ref`s (`#/…` JSON pointers); an unresolvable one stays as it is.
fn resolve(root: &Value, schema: &Value) -> (Value, Option<String>) {
    let mut current = schema.clone();
    let mut last_ref = None;
    for _ in 0..32 {
        let Some(reference) = current.get("$ref").and_then(Value::as_str).map(str::to_owned) else { break };
        let Some(pointer) = reference.strip_prefix('#') else { break };
        let Some(target) = root.pointer(pointer) else { break };
        current = target.clone();
        last_ref = Some(reference);
    }
    (current, last_ref)
}

/// Kuhn's augmenting paths: for each old branch (row), the new branch it is matched to.
fn maximum_matching(edges: &[Vec<(usize, Vec<Difference>)>], columns: usize) -> Vec<Option<usize>> {
    fn augment(
        row: usize,
        edges: &[Vec<(usize, Vec<Difference>)>],
        owner: &mut [Option<usize>],
        visited: &mut [bool],
    ) -> bool {
        for (column, _) in &edges[row] {
            if visited[*column] {
                continue;
            }
            visited[*column] = true;
            if owner[*column].is_none_or(|other| augment(other, edges, owner, visited)) {
                owner[*column] = Some(row);
                return true;
            }
        }
        false
    }
    let mut owner: Vec<Option<usize>> = vec![None; columns];
    for row in 0..edges.len() {
        let mut visited = vec![false; columns];
        augment(row, edges, &mut owner, &mut visited);
    }
    let mut matched = vec![None; edges.len()];
    for (column, row) in owner.iter().enumerate() {
        if let Some(row) = row {
            matched[*row] = Some(column);
        }
    }
    matched
}
