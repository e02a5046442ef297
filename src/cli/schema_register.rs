//! `paybridge schema register`: its arguments, the credentials from files or the
//! environment, what it prints and its exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use paybridge::config::{self, Secret};
use paybridge::registry::register::{Registration, register};
use paybridge::registry::{Auth, RegistryClient, auth_of, event_schema_text};

/// Where to register and as what.
#[derive(Clone, Debug, clap::Args)]
pub struct RegisterArgs {
    /// A configuration file: its `[kafka.schema_registry]` gives the registry, subject and
    /// credentials, its `kafka.topic` the default subject. Flags take precedence.
    #[arg(long, short, env = "PAYBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The registry's REST API base URL (for example http://localhost:8081 or
    /// http://apicurio:8080/apis/ccompat/v7).
    #[arg(long)]
    pub registry: Option<String>,
    /// The subject. Default: `<topic>-value` (TopicNameStrategy) with the configured topic
    /// (paybridge.payment-events.v1 without a config).
    #[arg(long)]
    pub subject: Option<String>,
    /// A file holding HTTP basic auth as USER:PASS (Confluent Cloud: API key and secret).
    /// Or the environment variable PAYBRIDGE_REGISTRY_BASIC_AUTH; never the value itself on
    /// the command line, where `ps` shows it.
    #[arg(long, value_name = "FILE", conflicts_with = "bearer_file")]
    pub basic_auth_file: Option<PathBuf>,
    /// A file holding a bearer token. Or the environment variable PAYBRIDGE_REGISTRY_BEARER.
    #[arg(long, value_name = "FILE")]
    pub bearer_file: Option<PathBuf>,
    /// Send the credentials to an `http://` registry (off: only to `https://`).
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Register this schema file instead of the event schema this binary produces.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Check only: say whether the registry would accept the schema; register nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the command: exit 0 when registered (or already there, or a dry run the registry
/// would accept), 1 when refused or the registry fails, 2 on bad input.
pub fn run(args: RegisterArgs) -> ExitCode {
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("paybridge schema register: {message}");
            return ExitCode::from(2);
        }
    };
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        eprintln!("paybridge schema register: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    match runtime.block_on(register(&plan.client, &plan.subject, &plan.schema, args.dry_run)) {
        Ok(outcome @ Registration::Refused { .. }) => {
            eprint!("{}", lines(&outcome, &plan.subject));
            ExitCode::FAILURE
        }
        Ok(outcome) => {
            print!("{}", lines(&outcome, &plan.subject));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paybridge schema register: subject {}: {e}", plan.subject);
            ExitCode::FAILURE
        }
    }
}

struct Plan {
    client: RegistryClient,
    subject: String,
    schema: String,
}

fn plan(args: &RegisterArgs) -> Result<Plan, String> {
    let loaded = match &args.config {
        Some(path) => Some(config::load_file(path).map_err(|errors| format!("{}: {errors}", path.display()))?),
        None => None,
    };
    let configured = loaded.as_ref().and_then(|c| c.kafka.schema_registry.as_ref());
    let topic = loaded.as_ref().map_or_else(config::default_topic, |c| c.kafka.topic.clone());
    let url = args
        .registry
        .clone()
        .or_else(|| configured.map(|r| r.url.clone()))
        .ok_or("name the registry with --registry URL (or give --config with [kafka.schema_registry])")?;
    let auth = match credentials(args)? {
        Some(auth) => auth,
        None => configured.map(auth_of).unwrap_or_default(),
    };
    let insecure_allowed =
        args.allow_insecure_http || (args.registry.is_none() && configured.is_some_and(|r| r.allow_insecure_http));
    if !matches!(auth, Auth::None) && !insecure_allowed && reqwest::Url::parse(&url).is_ok_and(|u| u.scheme() == "http")
    {
        return Err(format!(
            "{url} is plain http://, which would send the registry credentials in clear: use https://, or pass \
             --allow-insecure-http"
        ));
    }
    let subject = args
        .subject
        .clone()
        .or_else(|| configured.and_then(|r| r.subject.clone()))
        .unwrap_or_else(|| format!("{topic}-value"));
    let timeout = configured.map_or(Duration::from_secs(10), |r| r.request_timeout.get());
    let schema = match &args.schema {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            text
        }
        None => event_schema_text(),
    };
    let client = RegistryClient::new(&url, auth, timeout)?;
    Ok(Plan { client, subject, schema })
}

/// Environment variables that carry registry credentials (the flags name files instead).
const BASIC_AUTH_VAR: &str = "PAYBRIDGE_REGISTRY_BASIC_AUTH";
const BEARER_VAR: &str = "PAYBRIDGE_REGISTRY_BEARER";

/// The credentials from `--basic-auth-file`/`--bearer-file` or their environment variables;
/// None when neither is given (the config's apply).
fn credentials(args: &RegisterArgs) -> Result<Option<Auth>, String> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let basic = match &args.basic_auth_file {
        Some(path) => Some((read(path)?, format!("the file {}", path.display()))),
        None => std::env::var(BASIC_AUTH_VAR).ok().map(|v| (v, BASIC_AUTH_VAR.to_owned())),
    };
    let bearer = match &args.bearer_file {
        Some(path) => Some(read(path)?),
        None => std::env::var(BEARER_VAR).ok(),
    };
    match (basic, bearer) {
        (Some(_), Some(_)) => Err("give basic auth or a bearer token, not both".to_owned()),
        (Some((pair, from)), None) => {
            let (username, password) = pair
                .split_once(':')
                .ok_or_else(|| format!("{from} must hold USER:PASS (the password after the first ':')"))?;
            Ok(Some(Auth::Basic { username: username.to_owned(), password: Secret::new(password) }))
        }
        (None, Some(token)) => Ok(Some(Auth::Bearer(Secret::new(token)))),
        (None, None) => Ok(None),
    }
}

/// What the command prints about `outcome`.
fn lines(outcome: &Registration, subject: &str) -> String {
    match outcome {
        Registration::AlreadyRegistered { id, version } => {
            format!("subject {subject}: already registered, schema id {id} (version {version}); nothing changed\n")
        }
        Registration::Registered { id, version, first } => {
            let version = version.map(|v| format!("version {v}")).unwrap_or_else(|| "a new version".to_owned());
            let first = if *first { ", the subject's first" } else { "" };
            format!("subject {subject}: registered, schema id {id} ({version}{first})\n")
        }
        Registration::WouldRegister { first: true } => {
            format!(
                "subject {subject}: dry run: the subject is new, the schema would be its first version; nothing registered\n"
            )
        }
        Registration::WouldRegister { first: false } => format!(
            "subject {subject}: dry run: the registry finds the schema compatible with the latest version; nothing registered\n"
        ),
        Registration::Refused { reasons } => {
            let mut text = format!("subject {subject}: the registry refuses the schema; nothing registered\n");
            for reason in reasons {
                text.push_str(&format!("  - {reason}\n"));
            }
            text
        }
    }
}
