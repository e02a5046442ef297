//! HTTPS on the intake: the certificate from `intake.tls` is served, replaced on SIGHUP
//! without a restart, kept when the new files are broken, and a certificate that cannot be
//! read stops the start with a message naming the file.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use paybridge::config::{HumanDuration, TlsConfig};
use paybridge::intake::tls::ReloadingCert;
use support::process::{Paybridge, eventually};

/// A self-signed certificate for 127.0.0.1 and its key, written to `dir/<name>.{crt,key}`.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(status.success(), "openssl failed");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
    (read(&cert), read(&key))
}

/// A client that trusts only `cert_pem`.
fn client(cert_pem: &str) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The status of an empty-bodied webhook over HTTPS (400: the intake answered), or None
/// when the TLS handshake failed.
async fn status(client: &reqwest::Client, port: u16) -> Option<u16> {
    let url = format!("https://127.0.0.1:{port}/hooks/rn");
    match client.post(url).body("{}").send().await {
        Ok(response) => Some(response.status().as_u16()),
        Err(e) => {
            eprintln!("https call failed: {e:?}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_is_served_replaced_on_sighup_and_kept_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (first_cert, first_key) = certificate(dir.path(), "first");
    let (second_cert, second_key) = certificate(dir.path(), "second");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &first_cert).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_file, &first_key).unwrap_or_else(|e| panic!("{e}"));

    let s = support::ripplenet::setup().await;
    let tls = format!(
        "[intake.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval = \"1h\"\n",
        cert_file.display(),
        key_file.display()
    );
    let config = support::ripplenet::config(
        &s,
        "new_interval = \"1h\"\nsent_interval = \"1h\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"",
    )
    .replacen("[shutdown]", &format!("{tls}\n[shutdown]"), 1);
    let bridge = Paybridge::start(&config);
    let (trusts_first, trusts_second) = (client(&first_cert), client(&second_cert));

    assert_eq!(status(&trusts_first, bridge.intake_port).await, Some(400), "served over HTTPS");
    assert_eq!(status(&trusts_second, bridge.intake_port).await, None, "the second certificate is not in service yet");

    // Rotate: new files, then SIGHUP (the check interval is an hour, so only the signal reloads).
    std::fs::write(&key_file, &second_key).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&cert_file, &second_cert).unwrap_or_else(|e| panic!("{e}"));
    let hup = Command::new("kill").args(["-HUP", &bridge.pid().to_string()]).status();
    assert!(hup.is_ok_and(|s| s.success()));
    eventually("the second certificate in service", Duration::from_secs(5), || async {
        status(&client(&second_cert), bridge.intake_port).await == Some(400)
    })
    .await;
    assert_eq!(status(&client(&first_cert), bridge.intake_port).await, None, "the first one is retired");
    bridge.wait_for_log("intake TLS certificate reloaded", Duration::from_secs(5));

    // A broken file: logged, and the certificate in service stays.
    std::fs::write(&cert_file, "not a certificate").unwrap_or_else(|e| panic!("{e}"));
    let hup = Command::new("kill").args(["-HUP", &bridge.pid().to_string()]).status();
    assert!(hup.is_ok_and(|s| s.success()));
    bridge.wait_for_log("intake TLS certificate not reloaded", Duration::from_secs(5));
    assert_eq!(status(&client(&second_cert), bridge.intake_port).await, Some(400));
    assert!(!bridge.log().contains("BEGIN"), "no key material in the log");
}

#[test]
fn a_change_of_either_file_is_noticed_and_a_mismatched_key_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (first_cert, first_key) = certificate(dir.path(), "first");
    let (second_cert, second_key) = certificate(dir.path(), "second");
    let config = TlsConfig {
        cert_file: dir.path().join("tls.crt"),
        key_file: dir.path().join("tls.key"),
        reload_interval: HumanDuration::from_secs(1),
        client_ca_file: None,
    };
    std::fs::write(&config.cert_file, &first_cert).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&config.key_file, &first_key).unwrap_or_else(|e| panic!("{e}"));
    let cert = ReloadingCert::load(&config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cert.reload(false), Ok(false), "unchanged files are not reloaded");

    // A key that does not fit the certificate is refused, naming the key file.
    std::fs::write(&config.key_file, &second_key).unwrap_or_else(|e| panic!("{e}"));
    let refused = cert.reload(false).err().unwrap_or_default();
    assert!(refused.contains("tls.key") && refused.contains("does not fit"), "{refused}");
    assert_eq!(cert.reload(false), Ok(false), "a broken pair is reported once, not every interval");

    std::fs::write(&config.cert_file, &second_cert).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cert.reload(false), Ok(true), "the fixed pair is taken");

    let missing = TlsConfig { cert_file: dir.path().join("absent.crt"), ..config.clone() };
    let error = ReloadingCert::load(&missing).err().unwrap_or_default();
    assert!(error.contains("intake.tls.cert_file") && error.contains("absent.crt"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_certificate_stops_the_start_naming_the_file() {
    let s = support::ripplenet::setup().await;
    let config = support::ripplenet::config(&s, "[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]").replacen(
        "[shutdown]",
        "[intake.tls]\ncert_file = \"/nonexistent/tls.crt\"\nkey_file = \"/nonexistent/tls.key\"\n\n[shutdown]",
        1,
    );
    let mut bridge = Paybridge::spawn(&config);
    bridge.wait_for_log("/nonexistent/tls.crt", Duration::from_secs(10));
    assert_ne!(bridge.stop(), Some(0), "the start fails");
    assert!(!bridge.log().contains("paybridge started"));
}

/// Runs openssl with `args` in `dir`, quietly; panics when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("openssl: {e}"));
    assert!(status.success(), "openssl {args:?} failed");
}

/// A certificate authority `dir/<name>-ca.{crt,key}`; returns the certificate's PEM.
fn authority(dir: &Path, name: &str) -> String {
    let (crt, key) = (format!("{name}-ca.crt"), format!("{name}-ca.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
    std::fs::read_to_string(dir.join(crt)).unwrap_or_else(|e| panic!("{e}"))
}

/// A client certificate issued by the authority `ca` (from [`authority`]): certificate and
/// key in one PEM, as a client identity.
fn client_identity(dir: &Path, ca: &str, name: &str) -> reqwest::Identity {
    let (csr, crt, key, ext) =
        (format!("{name}.csr"), format!("{name}.crt"), format!("{name}.key"), format!("{name}.ext"));
    std::fs::write(dir.join(&ext), "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n")
        .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}-ca.crt"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{e}"));
    let pem = format!("{}{}", read(&crt), read(&key));
    reqwest::Identity::from_pem(pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// A client that trusts only `server_pem` and shows `identity` when asked.
fn client_with(server_pem: &str, identity: Option<reqwest::Identity>) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(server_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .timeout(Duration::from_secs(10));
    let builder = match identity {
        Some(identity) => builder.identity(identity),
        None => builder,
    };
    builder.build().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_callers_with_its_certificates_are_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (server_cert, server_key) = certificate(dir.path(), "server");
    let partner_ca = authority(dir.path(), "partner");
    authority(dir.path(), "stranger");
    let partner = client_identity(dir.path(), "partner", "partner-client");
    let stranger = client_identity(dir.path(), "stranger", "stranger-client");
    let (cert_file, key_file, ca_file) =
        (dir.path().join("tls.crt"), dir.path().join("tls.key"), dir.path().join("clients-ca.crt"));
    std::fs::write(&cert_file, &server_cert).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_file, &server_key).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&ca_file, &partner_ca).unwrap_or_else(|e| panic!("{e}"));

    let s = support::ripplenet::setup().await;
    let tls = format!(
        "[intake.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nclient_ca_file = \"{}\"\nreload_interval = \"1h\"\n",
        cert_file.display(),
        key_file.display(),
        ca_file.display()
    );
    // No allowlist, token or signature: the client certificate is the path's protection.
    let config = support::ripplenet::config(
        &s,
        "new_interval = \"1h\"\nsent_interval = \"1h\"\n[sources.webhook]\nenabled = true\npath = \"/hooks/rn\"",
    )
    .replacen("[shutdown]", &format!("{tls}\n[shutdown]"), 1);
    let bridge = Paybridge::start(&config);
    let port = bridge.intake_port;

    assert_eq!(status(&client_with(&server_cert, Some(partner)), port).await, Some(400), "the partner is served");
    assert_eq!(status(&client_with(&server_cert, None), port).await, None, "no client certificate: no request");
    let stranger_client = client_with(&server_cert, Some(stranger));
    assert_eq!(status(&stranger_client, port).await, None, "a certificate from another CA: no request");

    // The bundle is reloaded with the certificate: now the stranger's CA is the trusted one.
    let stranger_ca = std::fs::read_to_string(dir.path().join("stranger-ca.crt")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&ca_file, &stranger_ca).unwrap_or_else(|e| panic!("{e}"));
    let hup = Command::new("kill").args(["-HUP", &bridge.pid().to_string()]).status();
    assert!(hup.is_ok_and(|s| s.success()));
    bridge.wait_for_log("intake TLS certificate reloaded", Duration::from_secs(5));
    eventually("the stranger's CA in service", Duration::from_secs(5), || async {
        status(&stranger_client, port).await == Some(400)
    })
    .await;
    let partner_again = client_identity(dir.path(), "partner", "partner-client-2");
    assert_eq!(status(&client_with(&server_cert, Some(partner_again)), port).await, None, "the old CA is retired");
}
