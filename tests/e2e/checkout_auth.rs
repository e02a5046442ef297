//! Checkout's private_key_jwt client authentication against the sandbox's token endpoint:
//! the assertion's shape, token caching, a fresh assertion per request, and key errors that
//! name the key but never show it.

use crate::support;

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use paybridge::config::{JwtClient, Secret};
use paybridge::http::jwt::{AssertionSigner, KeyError};
use paybridge::http::oauth::{Grant, TokenCache};
use serde_json::Value;
use support::checkout::{TOKEN_PATH, jwt_client as client};
use support::keys::{Keys, rsa_keys};
use support::sandbox::Sandbox;

/// The sandbox and its token URL.
async fn sandbox(keys: &Keys) -> (Sandbox, String) {
    let sb = support::checkout::sandbox(keys).await;
    let token_url = sb.url(TOKEN_PATH);
    (sb, token_url)
}

#[test]
fn the_assertion_carries_kid_iss_sub_aud_and_a_fresh_jti() {
    let keys = rsa_keys();
    let signer = AssertionSigner::from_config(&client("https://idp.example/adfs/oauth2/token", &keys))
        .unwrap_or_else(|e| panic!("{e}"));
    let (first, second) = (signer.sign().unwrap_or_default(), signer.sign().unwrap_or_default());
    let header = decode_header(&first).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("0123456789ABCDEF0123456789ABCDEF01234567"));
    let public = std::fs::read(&keys.public_file).unwrap_or_default();
    let key = DecodingKey::from_rsa_pem(&public).unwrap_or_else(|e| panic!("{e}"));
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://idp.example/adfs/oauth2/token"]);
    let claims = |jwt: &str| decode::<Value>(jwt, &key, &validation).unwrap_or_else(|e| panic!("{e}")).claims;
    let (a, b) = (claims(&first), claims(&second));
    assert_eq!(a["iss"], "sandbox-checkout-client");
    assert_eq!(a["sub"], "sandbox-checkout-client");
    assert_eq!(a["exp"].as_i64().unwrap_or(0) - a["iat"].as_i64().unwrap_or(0), 120);
    assert_ne!(a["jti"], b["jti"], "every assertion has its own jti");
    let form = signer.form(&first);
    assert!(form.contains(&("resource", "JPMC:URI:RS-TEST")), "{form:?}");
    assert!(form.contains(&("client_id", "sandbox-checkout-client")), "{form:?}");
}

#[tokio::test]
async fn tokens_are_cached_and_each_request_signs_a_new_assertion() {
    let keys = rsa_keys();
    let (sb, token_url) = sandbox(&keys).await;
    let signer = AssertionSigner::from_config(&client(&token_url, &keys)).unwrap_or_else(|e| panic!("{e}"));
    let cache = TokenCache::with_grant(reqwest::Client::new(), Grant::PrivateKeyJwt(signer));
    let first = cache.token().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cache.token().await.ok().as_deref(), Some(first.as_str()), "cached");
    cache.invalidate().await;
    // The sandbox refuses a replayed jti: a second token proves a fresh assertion.
    let second = cache.token().await.unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(first, second);
    let requests = sb.ledger("kind=request&provider=checkout").await;
    let statuses: Vec<u64> =
        requests.iter().filter(|e| e["endpoint"] == "checkout.token").filter_map(|e| e["status"].as_u64()).collect();
    assert_eq!(statuses, [200, 200], "one token request each, both accepted");
}

#[tokio::test]
async fn the_token_endpoint_refuses_another_resource_or_kid_and_names_the_problem() {
    let keys = rsa_keys();
    let sb = support::checkout::sandbox_with(&keys, |s| {
        s.checkout.resource = Some("JPMC:URI:RS-PROD".into());
        s.checkout.key_id = Some("0123456789ABCDEF0123456789ABCDEF01234567".into());
    })
    .await;
    let token_url = sb.url(TOKEN_PATH);
    let token = |jwt: JwtClient| async move {
        let signer = AssertionSigner::from_config(&jwt).unwrap_or_else(|e| panic!("{e}"));
        TokenCache::with_grant(reqwest::Client::new(), Grant::PrivateKeyJwt(signer)).token().await
    };
    let wrong_resource = token(client(&token_url, &keys)).await.map_err(|e| e.to_string());
    assert!(wrong_resource.as_ref().is_err_and(|e| e.contains("invalid_resource")), "{wrong_resource:?}");
    let mut right = client(&token_url, &keys);
    right.resource = "JPMC:URI:RS-PROD".into();
    let mut wrong_kid = right.clone();
    wrong_kid.key_id = "FFFF".into();
    let refused = token(wrong_kid).await.map_err(|e| e.to_string());
    assert!(refused.as_ref().is_err_and(|e| e.contains("kid")), "{refused:?}");
    let mut wrong_client = right.clone();
    wrong_client.client_id = "someone-else".into();
    assert!(token(wrong_client).await.is_err(), "another client id");
    assert!(token(right).await.is_ok(), "the registered resource and kid");
}

#[test]
fn an_unreadable_or_unparsable_key_is_named_never_shown() {
    let keys = rsa_keys();
    let mut missing = client("https://idp.example/token", &keys);
    missing.private_key_path = Some(PathBuf::from("/nonexistent/checkout-key.pem"));
    let e = AssertionSigner::from_config(&missing).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("/nonexistent/checkout-key.pem"), "{e}");

    let garbage = keys.dir.path().join("garbage.pem");
    let content = "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-MATERIAL\n-----END PRIVATE KEY-----\n";
    std::fs::write(&garbage, content).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = client("https://idp.example/token", &keys);
    bad.private_key_path = Some(garbage.clone());
    let e = AssertionSigner::from_config(&bad).err();
    assert!(matches!(e, Some(KeyError::Parse { .. })), "{e:?}");
    let text = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains(&garbage.display().to_string()) && !text.contains("TOP-SECRET"), "{text}");

    let mut inline = client("https://idp.example/token", &keys);
    inline.private_key_path = None;
    inline.private_key = Some(Secret::new(content));
    let text = AssertionSigner::from_config(&inline).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("auth.private_key") && !text.contains("TOP-SECRET"), "{text}");
    inline.private_key = Some(Secret::new(String::from_utf8_lossy(&keys.private_pem)));
    assert!(AssertionSigner::from_config(&inline).is_ok(), "an inline PEM works");
}
