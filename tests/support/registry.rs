//! A Confluent Schema Registry REST stand-in (axum, on its own thread and port): subjects,
//! versions, global ids by content, lookup, latest, compatibility (BACKWARD, judged by
//! [`super::compat`], which refuses what Confluent refuses) and optional authentication.
//! Answers and errors have Confluent's shapes and codes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Who may call the registry.
#[derive(Clone, Debug, Default)]
pub enum Access {
    #[default]
    Open,
    Basic(String, String),
    Bearer(String),
}

#[derive(Default)]
pub struct Store {
    /// Schemas by id (id = index + 1), with their type.
    schemas: Vec<(String, Value)>,
    /// Subject → the ids of its versions (version = index + 1).
    subjects: BTreeMap<String, Vec<u32>>,
    /// Every request as "METHOD path".
    pub requests: Vec<String>,
}

impl Store {
    fn find_or_add(&mut self, schema_type: &str, schema: &Value) -> u32 {
        if let Some(i) = self.schemas.iter().position(|(t, s)| t == schema_type && s == schema) {
            return i as u32 + 1;
        }
        self.schemas.push((schema_type.to_owned(), schema.clone()));
        self.schemas.len() as u32
    }

    fn latest(&self, subject: &str) -> Option<(usize, u32)> {
        let versions = self.subjects.get(subject)?;
        versions.last().map(|id| (versions.len(), *id))
    }
}

pub struct Registry {
    pub url: String,
    store: Arc<Mutex<Store>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Registry {
    pub fn start(access: Access) -> Registry {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(Shared { store: store.clone(), access });
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let runtime = runtime.unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Registry { url, store, stop: Some(stop), thread: Some(thread) }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ids of the subject's versions, oldest first.
    pub fn versions(&self, subject: &str) -> Vec<u32> {
        self.store().subjects.get(subject).cloned().unwrap_or_default()
    }

    /// The schema registered with `id`.
    pub fn schema(&self, id: u32) -> Option<Value> {
        self.store().schemas.get((id as usize).wrapping_sub(1)).map(|(_, s)| s.clone())
    }

    /// Registers `schema` under `subject` as POST /subjects/{subject}/versions would
    /// (compatibility included): Ok(id) or the registry's error body.
    pub fn register(&self, subject: &str, schema_type: &str, schema: &Value) -> Result<u32, Value> {
        register_in(&mut self.store(), subject, schema_type, schema).map_err(|(_, body)| body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct Shared {
    store: Arc<Mutex<Store>>,
    access: Access,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", post(register).get(list_versions))
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility))
        .route("/schemas/ids/{id}", get(by_id))
        .with_state(shared)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
}

fn error(status: StatusCode, code: i64, message: String) -> Response {
    answer(status, json!({ "error_code": code, "message": message }))
}

fn subject_not_found(subject: &str) -> Response {
    error(StatusCode::NOT_FOUND, 40401, format!("Subject '{subject}' not found."))
}

/// Checks the credentials and records the request; Some(response) refuses it.
fn admit(shared: &Shared, headers: &HeaderMap, request: String) -> Option<Response> {
    shared.store().requests.push(request);
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let allowed = match &shared.access {
        Access::Open => true,
        Access::Basic(user, password) => {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            given == format!("Basic {encoded}")
        }
        Access::Bearer(token) => given == format!("Bearer {token}"),
    };
    (!allowed).then(|| error(StatusCode::UNAUTHORIZED, 40101, "Unauthorized".to_owned()))
}

/// The `{schema, schemaType}` of a request body; Err is the registry's 422.
fn parse_body(body: &str) -> Result<(String, Value), Box<Response>> {
    let invalid = |m: String| Box::new(error(StatusCode::UNPROCESSABLE_ENTITY, 42201, m));
    let request: Value = serde_json::from_str(body).map_err(|e| invalid(format!("Invalid request body: {e}")))?;
    let schema_type = request.get("schemaType").and_then(Value::as_str).unwrap_or("AVRO").to_owned();
    if schema_type != "JSON" {
        return Err(invalid(format!("Invalid schema type {schema_type}: this stand-in only knows JSON")));
    }
    let text = request.get("schema").and_then(Value::as_str).ok_or_else(|| invalid("Empty schema".to_owned()))?;
    let schema: Value = serde_json::from_str(text).map_err(|e| invalid(format!("Invalid schema {text:.40}…: {e}")))?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err(invalid("Invalid schema: not a JSON Schema".to_owned()));
    }
    Ok((schema_type, schema))
}

fn incompatibilities(store: &Store, subject: &str, schema: &Value) -> Vec<String> {
    let Some((_, latest_id)) = store.latest(subject) else { return Vec::new() };
    let old = &store.schemas[latest_id as usize - 1].1;
    super::compat::incompatibilities(old, schema)
        .into_iter()
        .map(|d| format!("Found incompatible change: {d}"))
        .collect()
}

fn register_in(
    store: &mut Store,
    subject: &str,
    schema_type: &str,
    schema: &Value,
) -> Result<u32, (StatusCode, Value)> {
    if let Some(ids) = store.subjects.get(subject)
        && let Some(id) = ids.iter().find(|id| &store.schemas[**id as usize - 1].1 == schema)
    {
        return Ok(*id);
    }
    let problems = incompatibilities(store, subject, schema);
    if !problems.is_empty() {
        let message = format!(
            "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
            problems.join(", ")
        );
        return Err((StatusCode::CONFLICT, json!({ "error_code": 409, "message": message })));
    }
    let id = store.find_or_add(schema_type, schema);
    store.subjects.entry(subject.to_owned()).or_default().push(id);
    Ok(id)
}

async fn list_subjects(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = admit(&shared, &headers, "GET /subjects".into()) {
        return refused;
    }
    let subjects: Vec<String> = shared.store().subjects.keys().cloned().collect();
    answer(StatusCode::OK, json!(subjects))
}

async fn list_versions(State(shared): State<Shared>, Path(subject): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = admit(&shared, &headers, format!("GET /subjects/{subject}/versions")) {
        return refused;
    }
    match shared.store().subjects.get(&subject) {
        Some(ids) => answer(StatusCode::OK, json!((1..=ids.len()).collect::<Vec<_>>())),
        None => subject_not_found(&subject),
    }
}

async fn register(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = admit(&shared, &headers, format!("POST /subjects/{subject}/versions")) {
        return refused;
    }
    let (schema_type, schema) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    match register_in(&mut shared.store(), &subject, &schema_type, &schema) {
        Ok(id) => answer(StatusCode::OK, json!({ "id": id })),
        Err((status, body)) => answer(status, body),
    }
}

async fn lookup(
    State(shared): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = admit(&shared, &headers, format!("POST /subjects/{subject}")) {
        return refused;
    }
    let (_, schema) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let store = shared.store();
    let Some(ids) = store.subjects.get(&subject) else { return subject_not_found(&subject) };
    match ids.iter().position(|id| store.schemas[*id as usize - 1].1 == schema) {
        Some(i) => answer(
            StatusCode::OK,
            json!({ "subject": subject, "id": ids[i], "version": i + 1, "schemaType": "JSON", "schema": schema.to_string() }),
        ),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found".to_owned()),
    }
}

async fn get_version(
    State(shared): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = admit(&shared, &headers, format!("GET /subjects/{subject}/versions/{version}")) {
        return refused;
    }
    let store = shared.store();
    let Some(ids) = store.subjects.get(&subject) else { return subject_not_found(&subject) };
    let index = match version.as_str() {
        "latest" | "-1" => ids.len(),
        n => n.parse::<usize>().unwrap_or(0),
    };
    match index.checked_sub(1).and_then(|i| ids.get(i)) {
        Some(id) => {
            let (schema_type, schema) = &store.schemas[*id as usize - 1];
            answer(
                StatusCode::OK,
                json!({ "subject": subject, "id": id, "version": index, "schemaType": schema_type, "schema": schema.to_string() }),
            )
        }
        None => error(StatusCode::NOT_FOUND, 40402, format!("Version {version} not found.")),
    }
}

async fn compatibility(
    State(shared): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) =
        admit(&shared, &headers, format!("POST /compatibility/subjects/{subject}/versions/{version}"))
    {
        return refused;
    }
    let (_, schema) = match parse_body(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let store = shared.store();
    if !store.subjects.contains_key(&subject) {
        return subject_not_found(&subject);
    }
    let problems = incompatibilities(&store, &subject, &schema);
    let mut body = json!({ "is_compatible": problems.is_empty() });
    if query.get("verbose").is_some_and(|v| v == "true") {
        body["messages"] = json!(problems);
    }
    answer(StatusCode::OK, body)
}

async fn by_id(State(shared): State<Shared>, Path(id): Path<u32>, headers: HeaderMap) -> Response {
    if let Some(refused) = admit(&shared, &headers, format!("GET /schemas/ids/{id}")) {
        return refused;
    }
    match shared.store().schemas.get((id as usize).wrapping_sub(1)) {
        Some((schema_type, schema)) => {
            answer(StatusCode::OK, json!({ "schemaType": schema_type, "schema": schema.to_string() }))
        }
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found".to_owned()),
    }
}
