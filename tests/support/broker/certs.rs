//! Certificates for a TLS broker, made with `openssl` in the broker's folder: a CA the test
//! generates, the broker's certificate (for 127.0.0.1 and localhost) in a PKCS#12 keystore,
//! and a client certificate for mTLS (principal `User:CN=<client CN>`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The keystore's password (a test secret, in the test's own folder).
pub const KEYSTORE_PASSWORD: &str = "broker-keystore-pw";
/// The client certificate's common name: the broker names its holder `User:CN=<this>`.
pub const CLIENT_CN: &str = "paybridge-mtls";

/// The files a secured broker and its clients use.
#[derive(Clone, Debug)]
pub struct Certificates {
    /// The CA that signed the broker's and the client's certificates (PEM).
    pub ca: PathBuf,
    /// The broker's key and certificate (PKCS#12, [`KEYSTORE_PASSWORD`]).
    pub broker_keystore: PathBuf,
    /// The client's certificate and key (PEM), for mTLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here: a client that trusts only it distrusts the broker.
    pub other_ca: PathBuf,
}

/// Makes every certificate in `dir`.
pub fn make(dir: &Path) -> Certificates {
    let path = |name: &str| dir.join(name);
    let ca = path("ca.pem");
    let ca_key = path("ca.key");
    openssl(
        dir,
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=paybridge-test-ca"],
        &[("-keyout", &ca_key), ("-out", &ca)],
    );
    let other_ca = path("other-ca.pem");
    openssl(
        dir,
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=someone-else"],
        &[("-keyout", &path("other-ca.key")), ("-out", &other_ca)],
    );
    let signed = |name: &str, subject: &str, extensions: &str| -> (PathBuf, PathBuf) {
        let (key, csr, cert, ext) = (
            path(&format!("{name}.key")),
            path(&format!("{name}.csr")),
            path(&format!("{name}.pem")),
            path(&format!("{name}.ext")),
        );
        std::fs::write(&ext, extensions).unwrap_or_else(|e| panic!("{}: {e}", ext.display()));
        openssl(dir, &["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject], &[("-keyout", &key), ("-out", &csr)]);
        openssl(
            dir,
            &["x509", "-req", "-days", "2", "-CAcreateserial"],
            &[("-in", &csr), ("-CA", &ca), ("-CAkey", &ca_key), ("-out", &cert), ("-extfile", &ext)],
        );
        (cert, key)
    };
    let (broker_cert, broker_key) = signed(
        "broker",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    let broker_keystore = path("broker.p12");
    let password = format!("pass:{KEYSTORE_PASSWORD}");
    openssl(
        dir,
        &["pkcs12", "-export", "-name", "broker", "-passout", &password],
        &[("-in", &broker_cert), ("-inkey", &broker_key), ("-certfile", &ca), ("-out", &broker_keystore)],
    );
    let (client_cert, client_key) = signed("client", &format!("/CN={CLIENT_CN}"), "extendedKeyUsage=clientAuth\n");
    Certificates { ca, broker_keystore, client_cert, client_key, other_ca }
}

fn openssl(dir: &Path, args: &[&str], files: &[(&str, &Path)]) {
    let mut command = Command::new("openssl");
    command.current_dir(dir).args(args);
    for (flag, file) in files {
        command.arg(flag).arg(file);
    }
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl (the tests make the broker's certificates with it): {e}"));
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}
