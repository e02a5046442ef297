//! `[[sources]]` sections against the sandbox: each provider's kind, name, URLs and sandbox
//! credentials in one place, with the test's own settings (intervals, page sizes) as extra
//! lines. A test appends sub-tables such as `[sources.webhook]` right after a section.

use super::sandbox::Sandbox;

/// A RippleNet source named `rn` for `account`, with `settings` as extra lines of the source.
pub fn ripplenet(sandbox: &Sandbox, account: &str, settings: &str) -> String {
    format!(
        r#"
[[sources]]
kind = "ripplenet"
name = "rn"
account = "{account}"
base_url = "{base}"
{settings}

[sources.auth]
token_url = "{base}/oauth/token"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
audience = "urn:ripplenet:sandbox"
"#,
        base = sandbox.url(""),
    )
}

/// A Payments Direct source named `pd` for `account`, with `settings` as extra lines of the
/// source.
pub fn payments_direct(sandbox: &Sandbox, account: &str, settings: &str) -> String {
    format!(
        r#"
[[sources]]
kind = "payments_direct"
name = "pd"
account = "{account}"
base_url = "{base}"
{settings}

[sources.auth]
token_url = "{base}/v2/oauth/token"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
audience = "urn:ripplexcurrent-test:sandbox"
"#,
        base = sandbox.url(""),
    )
}

/// A Checkout source named `co` for `account` (the sandbox's keys: `key_path`).
pub fn checkout(sandbox: &Sandbox, key_path: &str, account: &str) -> String {
    super::checkout::section(sandbox, key_path)
        .replace("account = \"merchant-001\"", &format!("account = \"{account}\""))
}
