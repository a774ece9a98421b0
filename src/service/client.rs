//! A tiny HTTP/1.1 client over loopback TCP, for the demo's simulated
//! agents and for tests: one request per connection, JSON bodies, and
//! server-sent event streams.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` name (`message` when none).
    pub event: String,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

/// Opens an event stream (`GET path` with `Accept: text/event-stream`)
/// and returns the status and a receiver of its events, which ends when
/// the server closes the stream. The events are read by a task of their
/// own, so none is missed while the caller does something else.
pub async fn events(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, mpsc::UnboundedReceiver<SseEvent>)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await?;
    // The head, byte by byte up to the blank line (it is short).
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head.contains("transfer-encoding: chunked");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut raw = Vec::new();
        let mut body = Vec::new();
        let mut buf = vec![0u8; 4096];
        let mut fields = SseEvent {
            event: String::new(),
            data: String::new(),
        };
        loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if chunked {
                raw.extend_from_slice(&buf[..n]);
                if !dechunk_into(&mut raw, &mut body) {
                    return;
                }
            } else {
                body.extend_from_slice(&buf[..n]);
            }
            // Whole lines only; a partial one waits for more bytes.
            while let Some(end) = body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = body.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !fields.data.is_empty() || !fields.event.is_empty() {
                        let mut ev = std::mem::replace(
                            &mut fields,
                            SseEvent {
                                event: String::new(),
                                data: String::new(),
                            },
                        );
                        if ev.event.is_empty() {
                            ev.event = "message".into();
                        }
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                } else if let Some(v) = line.strip_prefix("event:") {
                    fields.event = v.trim_start().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !fields.data.is_empty() {
                        fields.data.push('\n');
                    }
                    fields.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        }
    });
    Ok((status, rx))
}

/// Moves the complete chunks of `raw` (chunked transfer coding) into
/// `body`; false once the last chunk came or the coding is broken.
fn dechunk_into(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> bool {
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return true;
        };
        let size = String::from_utf8_lossy(&raw[..eol]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            return false;
        };
        if n == 0 {
            return false;
        }
        if raw.len() < eol + 2 + n + 2 {
            return true;
        }
        body.extend_from_slice(&raw[eol + 2..eol + 2 + n]);
        raw.drain(..eol + 2 + n + 2);
    }
}

/// Sends one request and returns the status and body. `token` goes in an
/// `Authorization: Bearer` header.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP request timed out"))?
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
