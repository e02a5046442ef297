//! `[[sources]]` sections against the sandbox: each provider's kind, name, URLs and sandbox
//! credentials in one place, with the test's own settings (intervals, page sizes) as extra
//! lines. A test appends sub-tables such as `[sources.webhook]` right after a section.

use super::sandbox::Sandbox;

/// A RippleNet source named `rn` for `account`, with `settings` as extra lines of the source.
pub fn ripplenet(sandbox: &Sandbox, account: &str, settings: &str) -> String {
    section(sandbox, ("ripplenet", "rn"), account, settings, ("/oauth/token", "urn:ripplenet:sandbox"))
}

/// A Payments Direct source named `pd` for `account`, with `settings` as extra lines of the
/// source.
pub fn payments_direct(sandbox: &Sandbox, account: &str, settings: &str) -> String {
    let auth = ("/v2/oauth/token", "urn:ripplexcurrent-test:sandbox");
    section(sandbox, ("payments_direct", "pd"), account, settings, auth)
}

/// A source of `kind` named `name`, with the sandbox's client credentials for the token at
/// `token_path` and `audience`.
fn section(
    sandbox: &Sandbox,
    (kind, name): (&str, &str),
    account: &str,
    settings: &str,
    (token_path, audience): (&str, &str),
) -> String {
    format!(
        r#"
[[sources]]
kind = "{kind}"
name = "{name}"
account = "{account}"
base_url = "{base}"
allow_insecure_http = true
{settings}

[sources.auth]
token_url = "{base}{token_path}"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
audience = "{audience}"
"#,
        base = sandbox.url(""),
    )
}

/// A Checkout source named `co` for `account` (the sandbox's keys: `key_path`).
pub fn checkout(sandbox: &Sandbox, key_path: &str, account: &str) -> String {
    super::checkout::section(sandbox, key_path)
        .replace("account = \"merchant-001\"", &format!("account = \"{account}\""))
}
