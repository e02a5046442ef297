//! A client of the Confluent Schema Registry REST API (also served by Apicurio's ccompat
//! API, Karapace and Redpanda): just the calls paybridge needs.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::Secret;

/// The registry's media type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT: &str =
    "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// Confluent's error codes for "not there".
const SUBJECT_NOT_FOUND: i64 = 40401;
const VERSION_NOT_FOUND: i64 = 40402;
const SCHEMA_NOT_FOUND: i64 = 40403;

/// How requests authenticate.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: Secret,
    },
    Bearer(Secret),
}

/// A failed registry call. Never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error (`error_code` and `message` when it sent them).
    #[error("the registry answered {status}: {message}{}", code.map(|c| format!(" (error_code {c})")).unwrap_or_default())]
    Api { status: u16, code: Option<i64>, message: String },
    #[error("cannot reach the registry: {0}")]
    Transport(String),
    #[error("unexpected answer from the registry: {0}")]
    Decode(String),
}

impl RegistryError {
    /// Worth trying again: the registry did not answer, or answered 5xx / 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport(_) => true,
            RegistryError::Api { status, .. } => *status >= 500 || *status == 429,
            RegistryError::Decode(_) => false,
        }
    }
}

/// A schema found under a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub id: u32,
    pub version: i64,
}

/// The latest version of a subject.
#[derive(Clone, Debug)]
pub struct Latest {
    pub id: u32,
    pub version: i64,
    /// `JSON`, `AVRO` (the registry's default when it says nothing) or `PROTOBUF`.
    pub schema_type: String,
    pub schema: String,
}

/// The registry's judgement of a schema against a subject's latest version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compatibility {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

#[derive(Deserialize)]
struct SchemaAnswer {
    id: i64,
    #[serde(default)]
    version: i64,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    schema: String,
}

#[derive(Deserialize)]
struct CompatibilityAnswer {
    is_compatible: bool,
    #[serde(default)]
    messages: Vec<String>,
}

/// The registry at one base URL.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
}

impl RegistryClient {
    /// A client for the registry at `url` (its path is kept as a prefix). Refuses a URL
    /// with credentials in it: they would end up in messages.
    pub fn new(url: &str, auth: Auth, timeout: Duration) -> Result<Self, String> {
        // The URL is not repeated in these messages: it may carry credentials.
        let base = Url::parse(url).map_err(|e| format!("the registry URL is not a valid URL ({e})"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err("the registry URL must start with http:// or https://".to_owned());
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err("the registry URL must not carry credentials; give them as basic auth or a bearer token".into());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("paybridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { http, base, auth })
    }

    /// The registry's base URL (no credentials, by construction).
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        let request = request.header(reqwest::header::ACCEPT, ACCEPT);
        match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password.expose())),
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
        }
    }

    /// Sends `request`; a 2xx gives its JSON body, anything else a [`RegistryError::Api`].
    async fn call(&self, request: RequestBuilder) -> Result<Value, RegistryError> {
        let response = self.authorized(request).send().await.map_err(|e| RegistryError::Transport(describe(&e)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| RegistryError::Transport(describe(&e)))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| RegistryError::Decode(format!("{e} in {}", excerpt(&text))));
        }
        Err(api_error(status, &text))
    }

    fn schema_body(schema: &str) -> Value {
        json!({ "schemaType": "JSON", "schema": schema })
    }

    fn post(&self, url: Url, body: &Value) -> RequestBuilder {
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::to_vec(body).unwrap_or_default())
    }

    /// `POST /subjects/{subject}`: the id and version of `schema` under `subject`, None
    /// when the subject or the schema is not there.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<Registered>, RegistryError> {
        let request = self.post(self.url(&["subjects", subject]), &Self::schema_body(schema));
        match self.call(request).await {
            Ok(body) => {
                let answer: SchemaAnswer = decode(body)?;
                Ok(Some(Registered { id: schema_id(answer.id)?, version: answer.version }))
            }
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /subjects/{subject}/versions/latest`, None when the subject has no version.
    pub async fn latest(&self, subject: &str) -> Result<Option<Latest>, RegistryError> {
        let request = self.http.get(self.url(&["subjects", subject, "versions", "latest"]));
        match self.call(request).await {
            Ok(body) => {
                let answer: SchemaAnswer = decode(body)?;
                Ok(Some(Latest {
                    id: schema_id(answer.id)?,
                    version: answer.version,
                    schema_type: answer.schema_type.unwrap_or_else(|| "AVRO".to_owned()),
                    schema: answer.schema,
                }))
            }
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`: whether the
    /// registry would accept `schema` as the subject's next version, with its reasons.
    /// None when the subject has nothing to be compatible with.
    pub async fn compatibility(&self, subject: &str, schema: &str) -> Result<Option<Compatibility>, RegistryError> {
        let mut url = self.url(&["compatibility", "subjects", subject, "versions", "latest"]);
        url.query_pairs_mut().append_pair("verbose", "true");
        match self.call(self.post(url, &Self::schema_body(schema))).await {
            Ok(body) => {
                let answer: CompatibilityAnswer = decode(body)?;
                Ok(Some(Compatibility { is_compatible: answer.is_compatible, messages: answer.messages }))
            }
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /subjects/{subject}/versions`: registers `schema` (the registry gives the
    /// existing id when it is already there) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let body =
            self.call(self.post(self.url(&["subjects", subject, "versions"]), &Self::schema_body(schema))).await?;
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        schema_id(decode::<Id>(body)?.id)
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, RegistryError> {
    let shown = excerpt(&body.to_string());
    serde_json::from_value(body).map_err(|e| RegistryError::Decode(format!("{e} in {shown}")))
}

fn schema_id(id: i64) -> Result<u32, RegistryError> {
    u32::try_from(id)
        .map_err(|_| RegistryError::Decode(format!("schema id {id} does not fit the wire format's 4 bytes")))
}

/// A 404 that the registry itself gave for a missing subject, version or schema (a 404
/// without its error code is a wrong URL, and reported as such).
fn is_absent(error: &RegistryError) -> bool {
    matches!(
        error,
        RegistryError::Api { status: 404, code: Some(SUBJECT_NOT_FOUND | VERSION_NOT_FOUND | SCHEMA_NOT_FOUND), .. }
    )
}

fn api_error(status: StatusCode, text: &str) -> RegistryError {
    #[derive(Deserialize)]
    struct Body {
        error_code: Option<i64>,
        message: Option<String>,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(Body { error_code, message: Some(message) }) => {
            RegistryError::Api { status: status.as_u16(), code: error_code, message }
        }
        _ => {
            let hint = if status == StatusCode::NOT_FOUND {
                " (is the URL the registry's REST API base, with any path prefix such as /apis/ccompat/v7?)"
            } else {
                ""
            };
            RegistryError::Api { status: status.as_u16(), code: None, message: format!("{}{hint}", excerpt(text)) }
        }
    }
}

fn excerpt(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The error and its causes on one line ("connection refused" is in a source).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
