//! RSA key pairs for private_key_jwt tests, made with the system's openssl.

use super::child::{OutputWithin, QUICK};
use std::path::PathBuf;
use std::process::Command;

pub struct Keys {
    pub dir: tempfile::TempDir,
    pub private_pem: Vec<u8>,
    pub private_file: PathBuf,
    pub public_file: PathBuf,
}

pub fn rsa_keys() -> Keys {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let private = dir.path().join("key.pem");
    let public = dir.path().join("pub.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&private)
        .arg("2048")
        .output_within(QUICK)
        .status
        .success();
    assert!(ok, "openssl genrsa");
    let ok = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output_within(QUICK)
        .status
        .success();
    assert!(ok, "openssl rsa -pubout");
    let private_pem = std::fs::read(&private).unwrap_or_default();
    Keys { dir, private_pem, private_file: private, public_file: public }
}
