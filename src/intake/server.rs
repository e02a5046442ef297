//! The intake's accept loop: HTTP/1.1, plain or TLS, a deadline on each request's headers
//! (and on the TLS handshake), the caller's address for the allowlist, and a graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How the intake serves connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Longest time for a request's headers and for a TLS handshake.
    pub header_timeout: Duration,
    /// HTTPS when set, with the configuration in service at each handshake.
    pub tls: Option<Arc<crate::intake::tls::ReloadingCert>>,
}

/// Serves `router` on `listener` until `stop` is cancelled; then no new connection is
/// taken, idle connections close, and in-flight calls finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // keep serving the others.
                    tracing::warn!(error = %e, "intake: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let router = router.clone();
        let header_timeout = options.header_timeout;
        let acceptor = match &options.tls {
            None => None,
            Some(tls) => match tls.server_config() {
                Ok(config) => Some(TlsAcceptor::from(config)),
                Err(e) => {
                    tracing::error!(error = %e, "intake: no TLS configuration; connection refused");
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                return connection(stream, peer, router, header_timeout, watcher).await;
            };
            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, peer, router, header_timeout, watcher).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "intake: TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "intake: TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves one HTTP/1.1 connection with `router`, each request tagged with the peer's
/// address, until it closes (or, once the intake stops, its in-flight call is answered).
async fn connection<S>(stream: S, peer: SocketAddr, router: Router, header_timeout: Duration, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(Body::new))
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "intake: connection ended with an error");
    }
}
