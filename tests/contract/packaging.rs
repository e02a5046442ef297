//! The container build copies everything the manifest needs (no Docker here to try it).

use crate::support::child;

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
    let mut paths = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned(), "build.rs".to_owned()];
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

fn run(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output_within(QUICK);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, version) = run(std::process::Command::new(env!("CARGO_BIN_EXE_paybridge")).arg("--version"));
    assert!(ok, "{version}");
    let (git_ok, head) =
        run(std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).current_dir(root));
    let commit = if git_ok { head.trim().to_owned() } else { "unknown".to_owned() };
    assert_eq!(version.trim(), format!("paybridge {} (commit {commit})", env!("CARGO_PKG_VERSION")));
}

#[test]
fn one_version_for_the_crate_the_chart_and_its_image_with_a_license_and_a_changelog() {
    let (ok, out) =
        run(std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/release")).arg("check"));
    assert!(ok && out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let license = read("LICENSE");
    assert!(license.contains("Apache License") && license.contains("Version 2.0, January 2004"), "LICENSE");
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest["package"]["license"].as_str(), Some("Apache-2.0"));
    // The image build: labelled with the version and the commit.
    let (ok, plan) = run(std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/release"))
        .args(["image", "--dry-run"]));
    assert!(ok, "{plan}");
    assert!(
        plan.contains(&format!("ghcr.io/paybridge/paybridge:{}", env!("CARGO_PKG_VERSION")))
            && plan.contains(&format!("PAYBRIDGE_VERSION={}", env!("CARGO_PKG_VERSION")))
            && plan.contains("PAYBRIDGE_COMMIT="),
        "{plan}"
    );
    let dockerfile = read("Dockerfile");
    for label in ["org.opencontainers.image.version=\"$PAYBRIDGE_VERSION\"", "org.opencontainers.image.revision"] {
        assert!(dockerfile.contains(label), "the image lacks the label {label}");
    }
}

/// `scripts/release set-version` on a copy of the files it edits: every place follows, the
/// changelog gets the release's section, and `check` then agrees; a malformed version is
/// refused without touching anything.
#[test]
fn set_version_moves_every_version_together() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for rel in [
        "Cargo.toml",
        "CHANGELOG.md",
        "scripts/release",
        "deploy/helm/paybridge/Chart.yaml",
        "deploy/helm/paybridge/templates/_helpers.tpl",
    ] {
        let to = copy.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap_or(copy.path())).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(root.join(rel), &to).unwrap_or_else(|e| panic!("{rel}: {e}"));
    }
    let script = copy.path().join("scripts/release");
    let (ok, out) = run(std::process::Command::new(&script).args(["set-version", "1.2"]));
    assert!(!ok && out.contains("semantic version"), "{out}");
    let (ok, out) = run(std::process::Command::new(&script).args(["set-version", "9.8.7"]));
    assert!(ok && out.contains("-> 9.8.7"), "{out}");
    let text = |rel: &str| std::fs::read_to_string(copy.path().join(rel)).unwrap_or_default();
    assert!(text("Cargo.toml").contains("\nversion = \"9.8.7\"\n"));
    let chart = text("deploy/helm/paybridge/Chart.yaml");
    assert!(chart.contains("\nversion: 9.8.7\n") && chart.contains("\nappVersion: \"9.8.7\"\n"), "{chart}");
    assert!(text("deploy/helm/paybridge/templates/_helpers.tpl").contains("-}}9.8.7{{-"));
    let changelog = text("CHANGELOG.md");
    assert!(changelog.contains("## [Unreleased]\n\n## [9.8.7] - "), "{changelog}");
    // Only the package's version moved, not a dependency's.
    assert_eq!(text("Cargo.toml").matches("9.8.7").count(), 1);
}

/// `paybridge completions SHELL` prints a script the shell accepts, naming every command;
/// `paybridge man --out-dir DIR` writes a page per command that `man` finds on MANPATH.
#[test]
fn completions_and_man_pages_come_from_the_command_line_itself() {
    let paybridge = || std::process::Command::new(env!("CARGO_BIN_EXE_paybridge"));
    let (ok, bash) = run(paybridge().args(["completions", "bash"]));
    assert!(ok && bash.contains("_paybridge()"), "{bash}");
    for command in ["run", "backfill", "tail", "trace", "dlq", "cursor", "reconcile", "config", "schema"] {
        assert!(bash.contains(&format!("paybridge,{command})")), "bash completion lacks {command}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join("paybridge.bash");
    std::fs::write(&script, &bash).unwrap_or_else(|e| panic!("{e}"));
    let (ok, syntax) = run(std::process::Command::new("bash").arg("-n").arg(&script));
    assert!(ok, "bash rejects the completion script: {syntax}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (ok, text) = run(paybridge().args(["completions", shell]));
        assert!(ok && text.contains("reconcile"), "{shell}: {text}");
    }
    let (ok, refused) = run(paybridge().args(["completions", "tcsh"]));
    assert!(!ok && refused.contains("possible values"), "{refused}");

    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap_or_else(|e| panic!("{e}"));
    let (ok, out) = run(paybridge().args(["man", "--out-dir"]).arg(&man1));
    assert!(ok, "{out}");
    for page in ["paybridge.1", "paybridge-run.1", "paybridge-dlq-redrive.1", "paybridge-config-validate.1"] {
        assert!(man1.join(page).exists(), "{page} not written");
    }
    let (ok, top) = run(paybridge().arg("man"));
    assert!(ok && top.contains(".TH paybridge 1") && top.contains(env!("CARGO_PKG_VERSION")), "{top}");
    // `man` itself, where the machine has it (.ci/run installs man-db).
    if std::process::Command::new("man").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let (ok, page) = run(std::process::Command::new("man")
            .args(["-P", "cat", "paybridge-run"])
            .env("MANPATH", dir.path().join("man"))
            .env("MANWIDTH", "100"));
        assert!(ok && page.contains("SYNOPSIS") && page.contains("--config"), "{page}");
    }
}
