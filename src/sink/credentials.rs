//! A SASL password from a file that is rotated in place (a mounted Kubernetes Secret, a
//! Vault agent's file): every long-lived Kafka client registers here, and when the file
//! changes each is handed the new password (librdkafka's `rd_kafka_sasl_set_credentials`),
//! which it uses from its next connection or re-authentication, without a restart.
//! Clients created later read the file when they are configured ([`password_from_file`]).

use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::producer::{FutureProducer, Producer};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;

/// A Kafka client whose credentials can be set while it runs.
pub trait Handle: Send + Sync {
    fn native(&self) -> *mut rd::rd_kafka_t;
}

impl<C: ClientContext + 'static> Handle for FutureProducer<C> {
    fn native(&self) -> *mut rd::rd_kafka_t {
        self.client().native_ptr()
    }
}

impl<C: ConsumerContext + 'static> Handle for Arc<BaseConsumer<C>> {
    fn native(&self) -> *mut rd::rd_kafka_t {
        rdkafka::consumer::Consumer::client(self.as_ref()).native_ptr()
    }
}

/// Keeps a client registered while its owner holds it.
pub struct Registration(#[allow(dead_code)] Arc<dyn Handle>);

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registration")
    }
}

fn clients() -> &'static Mutex<Vec<Weak<dyn Handle>>> {
    static CLIENTS: Mutex<Vec<Weak<dyn Handle>>> = Mutex::new(Vec::new());
    &CLIENTS
}

/// Registers `client` (a clone of it, or an `Arc` of it) until the returned value drops.
pub fn register(client: impl Handle + 'static) -> Arc<Registration> {
    let handle: Arc<dyn Handle> = Arc::new(client);
    let mut list = clients().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    list.retain(|c| c.strong_count() > 0);
    list.push(Arc::downgrade(&handle));
    Arc::new(Registration(handle))
}

/// Hands `username` and `password` to every registered client still alive; how many.
pub fn set_everywhere(username: &str, password: &str) -> Result<usize, String> {
    let (user, pass) = match (CString::new(username), CString::new(password)) {
        (Ok(u), Ok(p)) => (u, p),
        _ => return Err("the username or password holds a NUL byte".into()),
    };
    let live: Vec<Arc<dyn Handle>> = {
        let mut list = clients().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        list.retain(|c| c.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    };
    for client in &live {
        // SAFETY: the client is alive for the call (`live` holds it); the strings are valid
        // C strings for the call, and librdkafka copies them.
        let error = unsafe { rd::rd_kafka_sasl_set_credentials(client.native(), user.as_ptr(), pass.as_ptr()) };
        if !error.is_null() {
            // SAFETY: an error librdkafka returned, read then destroyed once.
            let text = unsafe {
                let text = std::ffi::CStr::from_ptr(rd::rd_kafka_error_string(error)).to_string_lossy().into_owned();
                rd::rd_kafka_error_destroy(error);
                text
            };
            return Err(text);
        }
    }
    Ok(live.len())
}

/// The password in `file`, without surrounding whitespace (an error names the file).
pub fn password_from_file(file: &Path) -> Result<String, String> {
    crate::config::read_secret_file(file, "kafka.sasl_password_file").map(|s| s.expose().to_owned())
}

/// Watches `kafka.sasl_password_file` every `every` until `stop`: a changed password is
/// handed to every running client (one line says so, never the password).
pub async fn watch_password_file(kafka: KafkaConfig, every: Duration, stop: CancellationToken) {
    let Some(file) = kafka.sasl_password_file.clone() else { return };
    let username = kafka.properties.get("sasl.username").cloned().unwrap_or_default();
    let mut current = password_from_file(&file).ok();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match password_from_file(&file) {
            Ok(password) if current.as_deref() != Some(password.as_str()) => {
                match set_everywhere(&username, &password) {
                    Ok(clients) => tracing::info!(
                        file = %file.display(),
                        clients,
                        "kafka.sasl_password_file changed: the Kafka clients use the new password from their next connection or re-authentication"
                    ),
                    Err(reason) => {
                        tracing::error!(file = %file.display(), %reason, "cannot hand the new SASL password to the Kafka clients")
                    }
                }
                current = Some(password);
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::warn!(%reason, "the SASL password file is unreadable; the clients keep the last password")
            }
        }
    }
}
