//! HTTPS on the intake: a certificate and key from PEM files, swapped in place on SIGHUP or
//! when either file changes, so certificate rotation (cert-manager, a mounted Secret) needs
//! no restart. A file that fails to load keeps the previous certificate in service.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// The certificate in service, and where it comes from.
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times and sizes of the files last loaded.
    stamp: Mutex<Option<Stamp>>,
}

type Stamp = [(SystemTime, u64); 2];

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert").field("cert_file", &self.cert_file).field("key_file", &self.key_file).finish()
    }
}

impl ReloadingCert {
    /// Loads the certificate and key; an error names the file and what is wrong with it.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = stamp(&config.cert_file, &config.key_file);
        let key = certified_key(&config.cert_file, &config.key_file, &provider)?;
        Ok(Arc::new(Self {
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// The rustls server configuration serving this certificate (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, String> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads the files (when `force`, or when they changed since the last load). Returns
    /// whether a new certificate is now in service.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = stamp(&self.cert_file, &self.key_file);
        let mut last = self.stamp.lock().map_err(|_| "certificate state poisoned".to_owned())?;
        if !force && now == *last {
            return Ok(false);
        }
        // Remember the attempt either way: a broken file is reported once, not every interval.
        *last = now;
        let key = certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        let mut current = self.current.write().map_err(|_| "certificate state poisoned".to_owned())?;
        *current = Arc::new(key);
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| key.clone())
    }
}

fn stamp(cert_file: &Path, key_file: &Path) -> Option<Stamp> {
    let one = |path: &Path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    Some([one(cert_file)?, one(key_file)?])
}

fn certified_key(cert_file: &Path, key_file: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("intake.tls.cert_file {}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("intake.tls.cert_file {}: no certificate in the file", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("intake.tls.key_file {}: {e}", key_file.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| format!("intake.tls: the key in {} does not fit the certificate: {e}", key_file.display()))
}

/// Reloads `cert` on SIGHUP and whenever its files change (checked every `interval`),
/// until `stop`. Failures are logged and the previous certificate stays in service.
pub async fn watch(cert: Arc<ReloadingCert>, interval: Duration, stop: CancellationToken) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; the intake certificate reloads on file change only");
            None
        }
    };
    loop {
        let force = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => false,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        match cert.reload(force) {
            Ok(true) => tracing::info!(cert_file = %cert.cert_file.display(), "intake TLS certificate reloaded"),
            Ok(false) => {}
            Err(reason) => {
                tracing::error!(%reason, "intake TLS certificate not reloaded; the previous one stays in service")
            }
        }
    }
}
