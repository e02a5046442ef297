//! A TCP proxy in front of a Kafka broker that can hold one kind of request: every client
//! request frame (4-byte size, then api key, version, correlation id, …) is read whole and
//! forwarded in order; a frame whose api key is the held one waits `hold` first (and so does
//! everything behind it on that connection). Answers are copied back untouched.
//!
//! The broker must advertise the proxy's port ([`super::Broker::start_own_behind`]), or
//! clients would learn the broker's own address from the metadata and go around the proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Kafka's EndTxn request (commit or abort of a transaction).
pub const END_TXN: i16 = 26;

pub struct HoldingProxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: AtomicU16,
    api_key: i16,
    hold_ms: AtomicU64,
    held: AtomicUsize,
}

impl HoldingProxy {
    /// Listens on a free port at once (on a thread of its own); connections wait until
    /// [`HoldingProxy::forward_to`] names the broker.
    pub fn listen(api_key: i16) -> HoldingProxy {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("cannot bind the proxy: {e}"));
        let port = std_listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        std_listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared {
            upstream: AtomicU16::new(0),
            api_key,
            hold_ms: AtomicU64::new(0),
            held: AtomicUsize::new(0),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let Ok(runtime) = runtime else { return };
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else { return };
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(serve(client, accepting.clone()));
                }
            });
        });
        HoldingProxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's own port.
    pub fn forward_to(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    /// From now on every request of the held kind waits `hold` (zero: none waits).
    pub fn hold(&self, hold: Duration) {
        self.shared.hold_ms.store(hold.as_millis().try_into().unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// How many requests of the held kind were held.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }
}

async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let port = loop {
        match shared.upstream.load(Ordering::SeqCst) {
            0 => tokio::time::sleep(Duration::from_millis(20)).await,
            port => break port,
        }
    };
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let _ = forward_requests(&mut client_read, &mut server_write, &shared).await;
    answers.abort();
}

/// Forwards whole request frames, holding the ones of the held kind.
async fn forward_requests(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    shared: &Shared,
) -> std::io::Result<()> {
    loop {
        let size = from.read_u32().await?;
        let mut body = vec![0; usize::try_from(size).unwrap_or(0)];
        from.read_exact(&mut body).await?;
        let api_key = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
        let hold = shared.hold_ms.load(Ordering::SeqCst);
        if api_key == Some(shared.api_key) && hold > 0 {
            shared.held.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        to.write_u32(size).await?;
        to.write_all(&body).await?;
    }
}
