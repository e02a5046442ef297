//! A TCP proxy in front of a Kafka broker that can hold one kind of request, or answer
//! Produce requests itself with an error: every client request frame (4-byte size, then api
//! key, version, correlation id, …) is read whole and forwarded in order; a frame whose api
//! key is the held one waits `hold` first (and so does everything behind it on that
//! connection). With [`HoldingProxy::refuse_produce`], a Produce request (flexible versions,
//! 9 and up) is not forwarded: the proxy answers every partition of it with the error code,
//! as a broker whose validation refuses every record would. Answers go back in request
//! order, the broker's untouched.
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
    /// The error code Produce requests are answered with (0: forwarded).
    refuse_produce: std::sync::atomic::AtomicI16,
    refused: AtomicUsize,
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
            refuse_produce: std::sync::atomic::AtomicI16::new(0),
            refused: AtomicUsize::new(0),
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

    /// From now on Produce requests are answered with `error_code` for every partition and
    /// never reach the broker (0: forwarded again).
    pub fn refuse_produce(&self, error_code: i16) {
        self.shared.refuse_produce.store(error_code, Ordering::SeqCst);
    }

    /// How many Produce requests the proxy answered itself.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

/// Kafka's Produce request.
pub const PRODUCE: i16 = 0;

/// Where the answer to one request comes from, in request order.
enum Answer {
    Broker,
    Own(Vec<u8>),
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
    let (order, mut answers) = tokio::sync::mpsc::unbounded_channel::<Answer>();
    let writer = tokio::spawn(async move {
        while let Some(answer) = answers.recv().await {
            let frame = match answer {
                Answer::Own(frame) => frame,
                Answer::Broker => {
                    let Ok(size) = server_read.read_u32().await else { return };
                    let mut frame = size.to_be_bytes().to_vec();
                    frame.resize(4 + usize::try_from(size).unwrap_or(0), 0);
                    if server_read.read_exact(&mut frame[4..]).await.is_err() {
                        return;
                    }
                    frame
                }
            };
            if client_write.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    let _ = forward_requests(&mut client_read, &mut server_write, &shared, &order).await;
    drop(order);
    writer.abort();
}

/// Forwards whole request frames, holding the ones of the held kind and answering Produce
/// itself while told to.
async fn forward_requests(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    shared: &Shared,
    order: &tokio::sync::mpsc::UnboundedSender<Answer>,
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
        let refuse = shared.refuse_produce.load(Ordering::SeqCst);
        if api_key == Some(PRODUCE)
            && refuse != 0
            && let Some(answer) = produce_refusal(&body, refuse)
        {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = order.send(Answer::Own(answer));
            continue;
        }
        let _ = order.send(Answer::Broker);
        to.write_u32(size).await?;
        to.write_all(&body).await?;
    }
}

/// A byte reader over a request.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    /// A compact string or bytes: length + 1, then the bytes (0: null).
    fn compact(&mut self) -> Option<&[u8]> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(&[]);
        }
        self.take(usize::try_from(n - 1).ok()?)
    }
    fn tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(usize::try_from(size).ok()?)?;
        }
        Some(())
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The answer to Produce request `body` (header and body, flexible versions 9 to 12) with
/// `error_code` for every partition; None for a version this proxy does not speak.
fn produce_refusal(body: &[u8], error_code: i16) -> Option<Vec<u8>> {
    let mut r = Reader(body);
    let (_api_key, version, correlation) = (r.i16()?, r.i16()?, r.i32()?);
    if !(9..=12).contains(&version) {
        return None;
    }
    let client_id = r.i16()?;
    if client_id > 0 {
        r.take(usize::try_from(client_id).ok()?)?;
    }
    r.tagged_fields()?;
    r.compact()?; // transactional_id
    r.i16()?; // acks
    r.i32()?; // timeout
    let mut answer = correlation.to_be_bytes().to_vec();
    put_uvarint(&mut answer, 0); // response header tagged fields
    let topics = r.uvarint()?.checked_sub(1)?;
    put_uvarint(&mut answer, topics + 1);
    for _ in 0..topics {
        let name = r.compact()?.to_vec();
        put_uvarint(&mut answer, name.len() as u64 + 1);
        answer.extend_from_slice(&name);
        let partitions = r.uvarint()?.checked_sub(1)?;
        put_uvarint(&mut answer, partitions + 1);
        for _ in 0..partitions {
            let index = r.i32()?;
            r.compact()?; // records
            r.tagged_fields()?;
            answer.extend_from_slice(&index.to_be_bytes());
            answer.extend_from_slice(&error_code.to_be_bytes());
            for _ in 0..3 {
                answer.extend_from_slice(&(-1i64).to_be_bytes()); // offsets and times: none
            }
            put_uvarint(&mut answer, 1); // record_errors: none
            put_uvarint(&mut answer, 0); // error_message: null
            put_uvarint(&mut answer, 0); // tagged fields
        }
        r.tagged_fields()?;
        put_uvarint(&mut answer, 0);
    }
    answer.extend_from_slice(&0i32.to_be_bytes()); // throttle_time_ms
    put_uvarint(&mut answer, 0);
    let mut frame = u32::try_from(answer.len()).ok()?.to_be_bytes().to_vec();
    frame.extend_from_slice(&answer);
    Some(frame)
}
