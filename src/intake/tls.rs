//! HTTPS on the intake: a certificate and key from PEM files, swapped in place on SIGHUP or
//! when either file changes, so certificate rotation (cert-manager, a mounted Secret) needs
//! no restart. A file that fails to load keeps the previous certificate in service.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// The TLS configuration in service (certificate, and with `client_ca_file` the client
/// certificate check), and the files it comes from.
pub struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<ServerConfig>>,
    /// Modification times and sizes of the files last loaded.
    stamp: Mutex<Option<Stamp>>,
}

type Stamp = Vec<(SystemTime, u64)>;

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("client_ca_file", &self.client_ca_file)
            .finish()
    }
}

impl ReloadingCert {
    /// Loads the certificate, key and client CAs; an error names the file and what is
    /// wrong with it.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files =
            Files { cert: &config.cert_file, key: &config.key_file, client_ca: config.client_ca_file.as_deref() };
        let stamp = files.stamp();
        let server = files.server_config(&provider)?;
        Ok(Arc::new(Self {
            cert_file: config.cert_file.clone(),
            key_file: config.key_file.clone(),
            client_ca_file: config.client_ca_file.clone(),
            provider,
            current: RwLock::new(server),
            stamp: Mutex::new(stamp),
        }))
    }

    fn files(&self) -> Files<'_> {
        Files { cert: &self.cert_file, key: &self.key_file, client_ca: self.client_ca_file.as_deref() }
    }

    /// The rustls server configuration in service, for the next handshake.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        self.current.read().map(|c| c.clone()).map_err(|_| "TLS state poisoned".to_owned())
    }

    /// Reloads the files (when `force`, or when they changed since the last load). Returns
    /// whether a new configuration is now in service; on an error the previous one stays.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = self.files().stamp();
        let mut last = self.stamp.lock().map_err(|_| "certificate state poisoned".to_owned())?;
        if !force && now == *last {
            return Ok(false);
        }
        // Remember the attempt either way: a broken file is reported once, not every interval.
        *last = now;
        let server = self.files().server_config(&self.provider)?;
        let mut current = self.current.write().map_err(|_| "certificate state poisoned".to_owned())?;
        *current = server;
        Ok(true)
    }
}

/// The files one TLS configuration is built from.
struct Files<'a> {
    cert: &'a Path,
    key: &'a Path,
    client_ca: Option<&'a Path>,
}

impl Files<'_> {
    fn stamp(&self) -> Option<Stamp> {
        let one = |path: &Path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        [Some(self.cert), Some(self.key), self.client_ca].into_iter().flatten().map(one).collect()
    }

    /// HTTP/1.1 only; client certificates required when there is a client CA bundle.
    fn server_config(&self, provider: &Arc<CryptoProvider>) -> Result<Arc<ServerConfig>, String> {
        let key = certified_key(self.cert, self.key, provider)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let builder = match self.client_ca {
            Some(file) => builder.with_client_cert_verifier(client_verifier(file, provider)?),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
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

/// Accepts client certificates that chain to one of the CAs in `file`; a caller without
/// one fails the handshake.
fn client_verifier(file: &Path, provider: &Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let what = |e: &dyn fmt::Display| format!("intake.tls.client_ca_file {}: {e}", file.display());
    let cas = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| what(&e))?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| what(&e))?;
    }
    if roots.is_empty() {
        return Err(what(&"no CA certificate in the file"));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().map_err(|e| what(&e))
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
