//! The container build copies everything the manifest needs (no Docker here to try it).

#[path = "support/child.rs"]
mod child;

use child::{OutputWithin, QUICK};
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_dockerfile_copies_every_target_the_manifest_declares() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let dockerfile = read("Dockerfile");
    let build_stage = dockerfile.split("\nFROM ").nth(1).unwrap_or_default();
    let copied: Vec<&str> = build_stage
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|rest| {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            parts[..parts.len().saturating_sub(1)].to_vec()
        })
        .collect();
    let mut paths = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    for kind in ["lib", "bin", "bench", "test", "example"] {
        let targets = match manifest.get(kind) {
            Some(toml::Value::Array(items)) => items.clone(),
            Some(table @ toml::Value::Table(_)) => vec![table.clone()],
            _ => Vec::new(),
        };
        for t in targets {
            let name = t.get("name").and_then(toml::Value::as_str).unwrap_or_default();
            // Cargo's default locations when a target names no path.
            let default = match kind {
                "lib" => "src/lib.rs".to_owned(),
                "bin" => format!("src/bin/{name}.rs"),
                "bench" => format!("benches/{name}.rs"),
                "test" => format!("tests/{name}.rs"),
                _ => format!("examples/{name}.rs"),
            };
            paths.push(t.get("path").and_then(toml::Value::as_str).map(str::to_owned).unwrap_or(default));
        }
    }
    for path in paths {
        let top = path.split('/').next().unwrap_or_default();
        assert!(
            copied.iter().any(|c| c.trim_end_matches('/') == top || *c == path),
            "Dockerfile's build stage does not COPY {path} (copies {copied:?})"
        );
    }
}

#[test]
fn the_image_carries_the_product_only() {
    let dockerfile = read("Dockerfile");
    let build_stage = dockerfile.split("\nFROM ").nth(1).unwrap_or_default();
    let copies: Vec<&str> = build_stage.lines().filter(|l| l.starts_with("COPY ")).collect();
    // The workspace needs every member's manifest, and nothing more of the simulator.
    assert!(copies.iter().any(|l| l.contains("sandbox/Cargo.toml")), "{copies:?}");
    assert!(
        !copies.iter().any(|l| l.contains("sandbox/src") || l.split_whitespace().nth(1) == Some("sandbox")),
        "{copies:?}"
    );
    assert!(build_stage.contains("--bin paybridge"), "the build stage builds only the product binary");
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    let deps = manifest.get("dependencies").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    assert!(!deps.contains_key("paybridge-sandbox"), "the simulator must stay a dev-dependency");
    // `paybridge --help` lists no simulator command.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_paybridge")).arg("--help").output_within(QUICK);
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    assert!(help.contains("run") && !help.to_lowercase().contains("sandbox"), "{help}");
}
