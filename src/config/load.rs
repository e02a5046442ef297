//! Loading: TOML text + environment → validated [`Config`], or every error with its key path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

use super::env::{apply_overrides, interpolate};
use super::listen::LISTEN_PATTERN;
use super::{Config, DURATION_PATTERN, SOURCE_NAME_PATTERN, config_schema, validate};

/// One problem in the configuration, with the key it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path such as `kafka.bootstrap_servers` or `sources[0].name`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} configuration error{}:", if n == 1 { "" } else { "s" })?;
        for error in &self.0 {
            writeln!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A key-path segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    pub fn pointer_token(&self) -> String {
        match self {
            Segment::Key(k) => k.replace('~', "~0").replace('/', "~1"),
            Segment::Index(i) => i.to_string(),
        }
    }
}

/// `kafka.properties."sasl.password"`, `sources[0].name`.
pub fn display_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && !key.is_empty() {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
        }
    }
    if out.is_empty() { "(top level)".to_owned() } else { out }
}

/// Turns a JSON pointer into segments, using `doc` to tell list indexes from keys.
fn pointer_segments(doc: &Value, pointer: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut node = Some(doc);
    for token in pointer.split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        match (node, key.parse::<usize>()) {
            (Some(Value::Array(items)), Ok(i)) => {
                node = items.get(i);
                segments.push(Segment::Index(i));
            }
            (current, _) => {
                node = current.and_then(|n| n.get(&key));
                segments.push(Segment::Key(key));
            }
        }
    }
    segments
}

/// Reads and loads a config file with the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors(vec![ConfigError::new("(file)", format!("cannot read {}: {e}", path.display()))]))?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    load(&text, &env)
}

/// Loads a configuration from TOML `text` and the environment `env` (a pure function).
/// Returns every error found, each with its key path; messages never contain values that
/// may be secrets.
pub fn load(text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let at = match e.span() {
            Some(span) => line_and_column(text, span.start),
            None => "(file)".to_owned(),
        };
        ConfigErrors(vec![ConfigError::new(at, format!("not valid TOML: {}", e.message().trim_end()))])
    })?;
    let mut doc = serde_json::to_value(table)
        .map_err(|e| ConfigErrors(vec![ConfigError::new("(file)", format!("unsupported value: {e}"))]))?;

    let mut errors = Vec::new();
    let from_env = apply_overrides(&mut doc, env, &mut errors);
    let interpolated = interpolate(&mut doc, env, &mut errors);
    errors.extend(schema_errors(&mut doc, &from_env, &interpolated));
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let config: Config = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let path = e.path().to_string();
        let path = if path.is_empty() || path == "." { "(config)".to_owned() } else { path };
        let (path, message) = inside_source(&doc, &path).unwrap_or_else(|| (path, e.into_inner().to_string()));
        ConfigErrors(vec![ConfigError::new(path, message)])
    })?;
    let semantic = validate(&config);
    if semantic.is_empty() { Ok(config) } else { Err(ConfigErrors(semantic)) }
}

/// "line 5, column 12" of the byte `offset` in `text` (both counted from 1; a column is a
/// character). The line itself is not shown: it may hold a secret.
fn line_and_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// The config schema, generated once per process.
fn schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(config_schema)
}

/// The config schema's validator, generated and compiled once per process (a reload or a
/// fuzz run loads many configs; each compile cost more than the rest of a load).
fn schema_validator() -> Result<&'static jsonschema::Validator, String> {
    static VALIDATOR: std::sync::OnceLock<Result<jsonschema::Validator, String>> = std::sync::OnceLock::new();
    VALIDATOR
        .get_or_init(|| jsonschema::validator_for(schema()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Validates `doc` against the config schema. Strings that came from environment
/// variables are first turned into the type the schema expects at their key.
fn schema_errors(
    doc: &mut Value,
    from_env: &BTreeMap<String, String>,
    interpolated: &BTreeSet<String>,
) -> Vec<ConfigError> {
    let validator = match schema_validator() {
        Ok(v) => v,
        Err(e) => return vec![ConfigError::new("(schema)", format!("internal error: {e}"))],
    };
    // Coerce environment strings where the schema wants another type, until stable.
    for _ in 0..=from_env.len() {
        let retype: Vec<String> = validator
            .iter_errors(doc)
            .filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }))
            .map(|e| e.instance_path().as_str().to_owned())
            .filter(|p| from_env.contains_key(p))
            .collect();
        let mut changed = false;
        for pointer in retype {
            if let Some(slot) = doc.pointer_mut(&pointer)
                && let Some(typed) = slot.as_str().and_then(parse_env_literal)
            {
                *slot = typed;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    let mut out = Vec::new();
    for error in validator.iter_errors(doc) {
        let pointer = error.instance_path().as_str().to_owned();
        let mut segments = pointer_segments(doc, &pointer);
        let message = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    let mut path = segments.clone();
                    path.push(Segment::Key(key.clone()));
                    let message = if super::is_auto_ack_key(key) {
                        super::AUTO_ACK_REFUSED.to_owned()
                    } else {
                        match super::suggest::closest_key(schema(), doc, &segments, key) {
                            Some(known) => format!("unknown key; did you mean {known}?"),
                            None => "unknown key".to_owned(),
                        }
                    };
                    out.push(ConfigError::new(display_path(&path), message));
                }
                continue;
            }
            ValidationErrorKind::Required { property } => {
                segments.push(Segment::Key(property.as_str().unwrap_or_default().to_owned()));
                "missing required key".to_owned()
            }
            ValidationErrorKind::Pattern { pattern } if pattern == DURATION_PATTERN => {
                // Echo the value only when it was written in the file: one read from the
                // environment might be a secret wired to the wrong key.
                let literal = !from_env.contains_key(&pointer) && !interpolated.contains(&pointer);
                let shown = match error.instance().as_str() {
                    Some(v) if literal => format!(" {v:?}"),
                    _ => String::new(),
                };
                format!("invalid duration{shown}; use e.g. \"500ms\", \"30s\", \"10m\", \"1h 30m\"")
            }
            ValidationErrorKind::Pattern { pattern } if pattern == super::START_FROM_PATTERN => {
                "invalid start_from; use an RFC 3339 time (\"2026-11-01T08:00:00Z\") or a duration ago (\"2h\")"
                    .to_owned()
            }
            ValidationErrorKind::Pattern { pattern } if pattern == LISTEN_PATTERN => {
                "invalid listen address; use IP:port, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"".to_owned()
            }
            ValidationErrorKind::Pattern { pattern } if pattern == SOURCE_NAME_PATTERN => {
                "invalid name; use 1–63 lower-case letters, digits, '-' or '_', starting with a letter or digit"
                    .to_owned()
            }
            ValidationErrorKind::Enum { options } => format!("must be one of {options}"),
            // Other messages are masked: the value might be a secret.
            _ => error.masked().to_string(),
        };
        let mut message = message;
        if let Some(var) = from_env.get(&pointer) {
            message.push_str(&format!(" (from environment variable {var})"));
        }
        out.push(ConfigError::new(display_path(&segments), message));
    }
    out
}

/// Parses an environment value as a TOML literal (number, boolean, array, inline table).
fn parse_env_literal(text: &str) -> Option<Value> {
    let table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    serde_json::to_value(table.get("v")?).ok()
}

/// serde reads a source (an internally tagged enum) whole, so its errors stop at
/// `sources[N]`: reading that source again as its kind's own type names the key inside it.
fn inside_source(doc: &Value, path: &str) -> Option<(String, String)> {
    let index: usize = path.strip_prefix("sources[")?.strip_suffix(']')?.parse().ok()?;
    let mut source = doc.get("sources")?.get(index)?.clone();
    let kind = source.as_object_mut()?.remove("kind")?;
    let inner = match kind.as_str()? {
        "ripplenet" => serde_path_to_error::deserialize::<_, super::RipplenetSource>(source).err()?,
        "checkout" => serde_path_to_error::deserialize::<_, super::CheckoutSource>(source).err()?,
        "payments_direct" => serde_path_to_error::deserialize::<_, super::PaymentsDirectSource>(source).err()?,
        _ => return None,
    };
    let key = inner.path().to_string();
    let key = if key.is_empty() || key == "." { path.to_owned() } else { format!("{path}.{key}") };
    Some((key, inner.into_inner().to_string()))
}
