//! The files a configuration names must exist and be readable by this process: checked at
//! `paybridge run` and `config validate`, so a wrong path is a clear start-up error and not
//! a source failing later. (Not part of [`super::load`], which stays a pure function.)

use std::path::Path;

use super::{Config, ConfigError, SourceConfig};

/// librdkafka properties whose value is a file path.
fn is_file_property(name: &str) -> bool {
    name.ends_with(".location") || name == "sasl.kerberos.keytab"
}

/// Every file `config` names that does not exist, is not a file, or cannot be read.
pub fn file_errors(config: &Config) -> Vec<ConfigError> {
    let mut named: Vec<(String, &Path)> = Vec::new();
    if let Some(tls) = &config.intake.tls {
        named.push(("intake.tls.cert_file".into(), &tls.cert_file));
        named.push(("intake.tls.key_file".into(), &tls.key_file));
        if let Some(ca) = &tls.client_ca_file {
            named.push(("intake.tls.client_ca_file".into(), ca));
        }
    }
    if let Some(file) = &config.kafka.sasl_password_file {
        named.push(("kafka.sasl_password_file".into(), file));
    }
    for (name, value) in &config.kafka.properties {
        if is_file_property(name) {
            named.push((format!("kafka.properties.{name:?}"), Path::new(value)));
        }
    }
    for (i, source) in config.sources.iter().enumerate() {
        let secret_file = match source {
            SourceConfig::Ripplenet(r) => r.auth.client_secret_file.as_deref(),
            SourceConfig::PaymentsDirect(p) => p.auth.client_secret_file.as_deref(),
            SourceConfig::Checkout(_) => None,
        };
        if let Some(file) = secret_file {
            named.push((format!("sources[{i}].auth.client_secret_file"), file));
        }
        if let SourceConfig::Checkout(checkout) = source
            && let Some(key) = &checkout.auth.private_key_path
        {
            named.push((format!("sources[{i}].auth.private_key_path"), key));
        }
    }
    named.into_iter().filter_map(|(key, path)| problem(path).map(|message| ConfigError::new(key, message))).collect()
}

/// Why `path` cannot be read as a file, if it cannot.
fn problem(path: &Path) -> Option<String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!("{shown} does not exist")),
        Err(e) => Some(format!("{shown} cannot be read: {e}")),
        Ok(meta) if meta.is_dir() => Some(format!("{shown} is a directory, not a file")),
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => None,
            Err(e) => Some(format!("{shown} cannot be read by this process: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::problem;

    #[test]
    fn a_missing_file_a_directory_and_a_readable_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("key.pem");
        std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(problem(&file), None);
        assert!(problem(&dir.path().join("nope.pem")).is_some_and(|m| m.ends_with("does not exist")));
        assert!(problem(dir.path()).is_some_and(|m| m.contains("is a directory")));
    }
}
