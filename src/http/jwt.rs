//! private_key_jwt client assertions (RFC 7523) for J.P. Morgan's token endpoint: RS256,
//! header `kid`, claims `iss` = `sub` = client id, `aud` = the token URL exactly, `iat`,
//! `exp` and a `jti` unique per assertion. The key is read once at start; neither it nor
//! its content ever appears in an error or a log line.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::JwtClient;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why the signing key cannot be used. Names the key (path or config key), never its content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the private key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the private key {which} is not a PEM RSA private key (PKCS#1 or PKCS#8)")]
    Parse { which: String },
    #[error("no private key configured (auth.private_key_path or auth.private_key)")]
    Missing,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Signs client assertions for one client.
pub struct AssertionSigner {
    token_url: String,
    client_id: String,
    resource: String,
    key_id: String,
    ttl: Duration,
    key: EncodingKey,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner").field("client_id", &self.client_id).field("key", &"<redacted>").finish()
    }
}

impl AssertionSigner {
    /// Reads and parses the configured key.
    pub fn from_config(client: &JwtClient) -> Result<Self, KeyError> {
        let (pem, which) = match (&client.private_key_path, &client.private_key) {
            (Some(path), _) => {
                let pem = std::fs::read(path)
                    .map_err(|e| KeyError::Read { path: path.display().to_string(), reason: e.to_string() })?;
                (pem, path.display().to_string())
            }
            (None, Some(inline)) => (inline.expose().as_bytes().to_vec(), "auth.private_key".to_owned()),
            (None, None) => return Err(KeyError::Missing),
        };
        let key = EncodingKey::from_rsa_pem(&pem).map_err(|_| KeyError::Parse { which })?;
        Ok(Self {
            token_url: client.token_url.clone(),
            client_id: client.client_id.clone(),
            resource: client.resource.clone(),
            key_id: client.key_id.clone(),
            ttl: client.assertion_ttl.get(),
            key,
        })
    }

    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// A fresh assertion (new `jti`, `iat` now).
    pub fn sign(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.token_url,
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
    }

    /// The token request's form fields for `assertion`.
    pub fn form<'a>(&'a self, assertion: &'a str) -> [(&'static str, &'a str); 5] {
        [
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("resource", &self.resource),
        ]
    }
}
