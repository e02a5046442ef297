//! The library's layers (docs/src/architecture.md): a module imports only from its own layer
//! or the layers below it, and a provider never imports another provider. Read from the
//! source text: every `crate::…` and `super::…` path outside comments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layers, bottom (0) to top, by module path prefix; the longest prefix decides.
const LAYERS: &[(&str, u8)] = &[
    // Foundations: the event, the configuration, normalization, provider HTTP, metrics.
    ("ack", 0),
    ("config", 0),
    ("event", 0),
    ("health", 0),
    ("http", 0),
    ("log_limit", 0),
    ("metrics", 0),
    ("normalize", 0),
    ("progress", 0),
    ("schemas", 0),
    ("signal", 0),
    ("version", 0),
    // Kafka.
    ("sink", 1),
    // The pipeline in front of the sink, and what sits beside it: the cluster's
    // coordination, the schema registry.
    ("pipeline", 2),
    ("cluster", 2),
    ("registry", 2),
    // The source runtime: one loop, ledger, acker and cursor stage for every source, and the
    // webhook intake that feeds it.
    ("sources", 3),
    ("sources::runtime", 3),
    ("sources::webhook", 3),
    ("sources::webhook_pace", 3),
    ("intake", 3),
    // The providers.
    ("sources::checkout", 4),
    ("sources::payments_direct", 4),
    ("sources::ripplenet", 4),
    // Wiring and commands.
    ("sources::start", 5),
    ("admin", 5),
    ("backfill", 5),
    ("bridge", 5),
    ("cursor_command", 5),
    ("dead_letter", 5),
    ("doctor", 5),
    ("reconcile", 5),
    ("tail", 5),
    ("trace", 5),
];

const PROVIDER_LAYER: u8 = 4;

/// The layer of a module path (`["sources", "runtime", "acker"]`) and the prefix that
/// decided it.
fn layer_of(module: &[String]) -> Option<(u8, String)> {
    (1..=module.len()).rev().find_map(|n| {
        let prefix = module[..n].join("::");
        LAYERS.iter().find(|(name, _)| *name == prefix).map(|(_, layer)| (*layer, prefix))
    })
}

/// The module path of a file under src/ (`sources/runtime/acker.rs` → sources::runtime::acker).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if stem != "mod" && stem != "lib" {
            parts.push(stem);
        }
    }
    parts
}

/// The text without comments (line, block and doc comments) and string literals.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            // A char literal such as '"' or '{' (lifetimes have no closing quote nearby).
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") {
                    let len = rest.find('\'').map_or(0, |i| i + 1);
                    for _ in 0..len.max(1) {
                        chars.next();
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every module path named in `code` as `crate::…`, `super::…` or `self::…` (expanding
/// `use crate::{a::b, c}` groups), resolved from `module` (the file's module; `is_mod` for a
/// mod.rs or lib.rs, whose `super` is its parent's).
fn imports(code: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if starts_word {
            for root in ["crate::", "super::", "self::"] {
                let here: String = bytes[i..bytes.len().min(i + root.len())].iter().collect();
                if here == root {
                    let (paths, end) = path_tree(&bytes, i);
                    for path in paths {
                        if let Some(resolved) = resolve(&path, module) {
                            found.insert(resolved);
                        }
                    }
                    i = end;
                    break;
                }
            }
        }
        i += 1;
    }
    found
}

/// The paths of a `a::b::{c, d::e}` tree starting at `start`; and where it ends.
fn path_tree(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut segments = Vec::new();
    let mut i = start;
    loop {
        let word_start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i > word_start {
            segments.push(chars[word_start..i].iter().collect::<String>());
        }
        if i + 1 < chars.len() && chars[i] == ':' && chars[i + 1] == ':' {
            i += 2;
            if i < chars.len() && chars[i] == '{' {
                let mut paths = Vec::new();
                i += 1;
                loop {
                    while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                        i += 1;
                    }
                    if i >= chars.len() || chars[i] == '}' {
                        break;
                    }
                    let (inner, end) = path_tree(chars, i);
                    for tail in inner {
                        paths.push(segments.iter().cloned().chain(tail).collect());
                    }
                    i = end.max(i + 1);
                    // Skip an `as name` and anything else up to the next item.
                    while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                        i += 1;
                    }
                }
                return (paths, i + 1);
            }
            continue;
        }
        return (vec![segments], i);
    }
}

/// `path` (starting with crate, super or self) as a module path from the crate root.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| *s == "super") {
        rest.next();
        base.pop();
    }
    base.extend(rest.filter(|s| s.as_str() != "self").cloned());
    Some(base)
}

/// Upward imports (and imports between providers) in `files`: (path under src/, text).
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let module = module_of(path);
        let Some((layer, prefix)) = layer_of(&module) else {
            if !module.is_empty() {
                found.push(format!("{}: module {} has no layer; add it to LAYERS", path.display(), module.join("::")));
            }
            continue;
        };
        for target in imports(&code_only(text), &module) {
            let Some((target_layer, target_prefix)) = layer_of(&target) else { continue };
            let upward = target_layer > layer;
            let across_providers = layer == PROVIDER_LAYER && target_layer == PROVIDER_LAYER && target_prefix != prefix;
            if upward || across_providers {
                found.push(format!(
                    "{}: {prefix} (layer {layer}) imports {} (layer {target_layer})",
                    path.display(),
                    target.join("::")
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The library's files (src/, without the binary: main.rs and cli/).
fn library_files() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(&src).map(Path::to_path_buf).unwrap_or_default();
            if relative == Path::new("cli") || relative == Path::new("main.rs") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push((relative, std::fs::read_to_string(&path).unwrap_or_default()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn no_module_imports_from_a_layer_above_it_nor_a_provider_from_another() {
    let files = library_files();
    assert!(files.len() > 100, "the library's files were read: {}", files.len());
    let found = violations(&files);
    assert!(found.is_empty(), "imports against the layers (docs/src/architecture.md):\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_an_upward_import_a_grouped_one_a_super_one_and_one_across_providers() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let files = [
        file("sink/cursor.rs", "use crate::pipeline::Submitter;\n// crate::bridge in a comment\n"),
        file("http/client.rs", "use crate::{config::KafkaConfig, sources::runtime::UpstreamFailure};"),
        file("sources/runtime/acker.rs", "use super::super::ripplenet::Poller; let s = \"crate::bridge\";"),
        file("sources/payments_direct/mod.rs", "fn f(s: crate::sources::ripplenet::Singleton) {}"),
        file("pipeline.rs", "use crate::sink::kafka::KafkaSink; use super::event::CanonicalEvent;"),
        file("brand_new.rs", ""),
    ];
    let found = violations(&files);
    let expected = [
        "brand_new.rs: module brand_new has no layer; add it to LAYERS",
        "http/client.rs: http (layer 0) imports sources::runtime::UpstreamFailure (layer 3)",
        "sink/cursor.rs: sink (layer 1) imports pipeline::Submitter (layer 2)",
        "sources/payments_direct/mod.rs: sources::payments_direct (layer 4) imports sources::ripplenet::Singleton (layer 4)",
        "sources/runtime/acker.rs: sources::runtime (layer 3) imports sources::ripplenet::Poller (layer 4)",
    ];
    assert_eq!(found, expected);
}
