//! The webhook path's intake ceiling: what a raw HTTP server on the same cores answers when
//! the same load generator sends it the same webhooks. The server reads each body, parses
//! the thin payload and answers 200; it publishes nothing and calls nobody, so no bridge on
//! this machine can answer faster. The path's ceiling is the lower of this and the raw
//! producer's.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use paybridge_sandbox::Scenario;
use tokio::sync::oneshot;

use crate::support::sandbox::Sandbox;
use crate::webhooks::{WebhookRun, closed_loop};

/// Worker threads of the raw server: as many as paybridge's runtime has on this machine.
fn workers() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(2)
}

/// A raw webhook server on its own runtime (its own threads, like a separate process).
struct RawServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn start() -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers())
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("raw server runtime: {e}"));
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("raw server bind: {e}"));
                let addr = listener.local_addr().unwrap_or_else(|e| panic!("raw server address: {e}"));
                let _ = ready_tx.send(addr);
                let app = Router::new().route("/hooks/rn", post(answer));
                let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                });
                if let Err(e) = served.await {
                    panic!("raw server: {e}");
                }
            });
        });
        let addr = ready_rx.recv().unwrap_or_else(|e| panic!("raw server did not start: {e}"));
        Self { addr, stop: Some(stop_tx), thread: Some(thread) }
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thin payload read as paybridge reads it; 400 when it is not one.
async fn answer(body: axum::body::Bytes) -> StatusCode {
    #[derive(serde::Deserialize)]
    struct Thin<'a> {
        #[serde(borrow)]
        msg_id: &'a str,
    }
    match serde_json::from_slice::<Thin<'_>>(&body) {
        Ok(thin) if !thin.msg_id.is_empty() => StatusCode::OK,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `count` webhooks from the closed-loop callers (notifications created in a sandbox of
/// its own as the callers need them, as in paybridge's run) against the raw server.
pub async fn measure(http: &reqwest::Client, count: usize) -> WebhookRun {
    let sb = Arc::new(Sandbox::start(Scenario::default()).await);
    let server = RawServer::start();
    let url = format!("http://{}/hooks/rn", server.addr);
    let (answers, took) = closed_loop(&sb, http, &url, count).await;
    drop(server);
    let answered_200 = answers.iter().filter(|(_, status)| *status == 200).count();
    assert_eq!(answered_200, answers.len(), "the raw server answered every webhook 200");
    WebhookRun {
        mode: "raw server".into(),
        sent: answers.len(),
        answered_200,
        answered_per_s: answered_200 as f64 / took.as_secs_f64().max(1e-3),
        latency_ms: crate::measure::Percentiles::of(answers.into_iter().map(|(d, _)| d).collect()),
        ..WebhookRun::default()
    }
}
