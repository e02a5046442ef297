//! A bare HTTP/1.1 client over TCP, for requests a well-behaved client library will not
//! send: repeated headers, lying or absurd `Content-Length`, chunked bodies, invalid UTF-8,
//! bodies that stall.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request.
#[derive(Clone, Debug, Default)]
pub struct RawRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with `Transfer-Encoding: chunked` instead of `Content-Length`.
    pub chunked: bool,
    /// Send this `Content-Length` instead of the body's length.
    pub content_length: Option<String>,
}

impl RawRequest {
    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self { method: "POST", path: path.to_owned(), body: body.into(), ..Self::default() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request's bytes up to the end of the headers.
    pub fn head(&self) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\nhost: paybridge\r\nconnection: close\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if self.chunked {
            head.push_str("transfer-encoding: chunked\r\n");
        } else {
            let length = self.content_length.clone().unwrap_or_else(|| self.body.len().to_string());
            head.push_str(&format!("content-length: {length}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// The whole request.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.head();
        if self.chunked {
            for chunk in self.body.chunks(1000) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        } else {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// A response: status, headers (names lower-cased), body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `request` and reads the answer (the server closes: `connection: close`).
pub fn send(addr: SocketAddr, request: &RawRequest) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The server may answer (413, 401) and close before it read everything; a failed
    // write is fine as long as the answer can be read.
    let _ = stream.write_all(&request.bytes());
    read_response(&mut stream)
}

/// Reads a response until the connection closes.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse(&raw).ok_or_else(|| std::io::Error::other(format!("no HTTP response: {:?}", String::from_utf8_lossy(&raw))))
}

fn parse(raw: &[u8]) -> Option<RawResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(RawResponse { status, headers, body: body.to_owned() })
}
