//! The identity provider a secured node verifies OAUTHBEARER tokens with: the sandbox's
//! Kafka IdP (RS256 JWTs for client credentials, their JWKS), served for the whole test
//! binary on a thread of its own (the broker fetches the JWKS for as long as it runs).

use std::sync::OnceLock;

/// The client the sandbox's IdP knows by default: the broker's principal `User:<id>`.
pub const OIDC_CLIENT: (&str, &str) = ("kafka-client", "kafka-client-secret");
/// A client whose tokens are for another audience: the broker must refuse them.
pub const OIDC_CLIENT_ELSEWHERE: (&str, &str) = ("kafka-client-elsewhere", "kafka-client-elsewhere-secret");
/// The `aud` and `iss` of its tokens (the sandbox's defaults).
pub const OIDC_AUDIENCE: &str = "kafka";
pub const OIDC_ISSUER: &str = "https://paybridge-sandbox/kafka";

/// The IdP's base URL (started by the first caller).
pub fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("idp: {e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("idp: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("idp: {e}"));
        std::thread::Builder::new()
            .name("kafka-idp".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                let runtime = runtime.unwrap_or_else(|e| panic!("idp: {e}"));
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("idp: {e}"));
                    let state = paybridge_sandbox::state(7, paybridge_sandbox::Scenario::default());
                    let forever = tokio_util::sync::CancellationToken::new();
                    let _ = paybridge_sandbox::serve(listener, state, forever).await;
                });
            })
            .unwrap_or_else(|e| panic!("idp: {e}"));
        format!("http://{address}")
    })
}

/// The JWKS URL the broker verifies tokens against.
pub fn jwks_url() -> String {
    format!("{}/kafka/jwks.json", url())
}

/// The token endpoint clients ask for tokens.
pub fn token_url() -> String {
    format!("{}/kafka/oauth2/token", url())
}
