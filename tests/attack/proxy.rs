//! A fault proxy between a lane and its back-end: it speaks just enough
//! HTTP/1.1 to see each request whole, and fails a seeded random share of
//! them the ways a network and a busy back-end fail. Each request is sent
//! upstream on a connection of its own (`Connection: close`), so a back-end
//! that is down (killed) is simply a reset for the lane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The client's connection is reset before anything is forwarded.
    Reset,
    /// `503` with `Retry-After: 1`, nothing forwarded.
    Unavailable,
    /// `429` with `Retry-After: 1`, nothing forwarded.
    TooMany,
    /// Forwarded and committed upstream; the answer never reaches the
    /// client (its connection is closed).
    DropAfterCommit,
    /// Forwarded; the client gets the head and half the body, then a close.
    Truncated,
    /// Nothing is answered until the client gives up (longer than its
    /// request timeout); forwarded first half the time.
    Stall,
}

impl Fault {
    /// The name in the counts.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reset => "connection reset",
            Fault::Unavailable => "503 Retry-After: 1",
            Fault::TooMany => "429 Retry-After: 1",
            Fault::DropAfterCommit => "answer dropped after commit",
            Fault::Truncated => "answer truncated",
            Fault::Stall => "stall past the request timeout",
        }
    }

    const ALL: [Fault; 6] = [
        Fault::Reset,
        Fault::Unavailable,
        Fault::TooMany,
        Fault::DropAfterCommit,
        Fault::Truncated,
        Fault::Stall,
    ];
}

struct Plan {
    rng: rand::rngs::Xoshiro256PlusPlus,
    /// Share of requests that fail.
    rate: f64,
    /// Answer the batch route 404, as a back-end without it does.
    no_batches: bool,
    /// The link is down: every connection is reset.
    cut: bool,
}

/// The proxy: listening on `addr`, forwarding to `upstream`.
#[derive(Clone)]
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    plan: Arc<Mutex<Plan>>,
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` that fails nothing until
    /// [`Proxy::set_rate`].
    pub async fn start(upstream: std::net::SocketAddr, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let p = Proxy {
            addr: listener.local_addr().expect("proxy addr"),
            upstream,
            plan: Arc::new(Mutex::new(Plan {
                rng: rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed),
                rate: 0.0,
                no_batches: false,
                cut: false,
            })),
            counts: Arc::default(),
        };
        let proxy = p.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy.clone().serve(client));
            }
        });
        p
    }

    /// The share of requests that fail from now on (0 stops the faults).
    pub fn set_rate(&self, rate: f64) {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).rate = rate;
    }

    /// From now on the batch route is answered `404`, as by a back-end that
    /// does not have it: the lane sends single `PUT`s.
    pub fn refuse_batches(&self) {
        self.plan
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .no_batches = true;
    }

    /// Cuts the link (every connection reset, none forwarded) or mends it.
    pub fn cut(&self, cut: bool) {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).cut = cut;
    }

    /// Requests by what happened to them.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn count(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    fn draw(&self) -> (Option<Fault>, bool) {
        let mut p = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let rate = p.rate;
        let fault = p
            .rng
            .random_bool(rate)
            .then(|| Fault::ALL[p.rng.random_range(0..Fault::ALL.len())]);
        (fault, p.rng.random_bool(0.5))
    }

    /// One client connection, request after request (keep-alive).
    async fn serve(self, mut client: TcpStream) {
        let mut buf = Vec::new();
        loop {
            let Some(request) = read_request(&mut client, &mut buf).await else {
                return;
            };
            if self.plan.lock().unwrap_or_else(|e| e.into_inner()).cut {
                self.count("link cut (reset)");
                return reset(client);
            }
            let no_batches = self
                .plan
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .no_batches;
            if no_batches
                && request.starts_with(b"POST ")
                && request_line(&request).contains(":batch")
            {
                self.count("batch route refused (404)");
                let body = r#"{"code":"not_found","message":"no batch route"}"#;
                let answer = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if client.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            let (fault, coin) = self.draw();
            match fault {
                None => {
                    self.count("forwarded");
                    match self.forward(&request).await {
                        Some(answer) => {
                            if client.write_all(&answer).await.is_err() {
                                return;
                            }
                            // The upstream closed after its answer; the
                            // client may keep its connection.
                            if closes(&answer) {
                                return;
                            }
                        }
                        None => return reset(client),
                    }
                }
                Some(f) => {
                    self.count(f.name());
                    match f {
                        Fault::Reset => return reset(client),
                        Fault::Unavailable | Fault::TooMany => {
                            let status = if f == Fault::Unavailable {
                                "503 Service Unavailable"
                            } else {
                                "429 Too Many Requests"
                            };
                            let body =
                                r#"{"code":"injected","message":"a fault of the test proxy"}"#;
                            let answer = format!(
                                "HTTP/1.1 {status}\r\nRetry-After: 1\r\nContent-Type: application/json\r\n\
                                 Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if client.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Fault::DropAfterCommit => {
                            let _ = self.forward(&request).await;
                            return;
                        }
                        Fault::Truncated => {
                            if let Some(answer) = self.forward(&request).await {
                                let cut =
                                    head_len(&answer) + (answer.len() - head_len(&answer)) / 2;
                                let _ = client.write_all(&answer[..cut]).await;
                            }
                            return;
                        }
                        Fault::Stall => {
                            if coin {
                                let _ = self.forward(&request).await;
                            }
                            // Until the client gives up and closes.
                            let mut sink = [0u8; 1024];
                            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Sends `request` upstream on a connection of its own and returns the
    /// whole answer, or `None` if the upstream cannot be reached.
    async fn forward(&self, request: &[u8]) -> Option<Vec<u8>> {
        let mut up =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.upstream))
                .await
                .ok()?
                .ok()?;
        up.write_all(&with_connection_close(request)).await.ok()?;
        let mut answer = Vec::new();
        // The upstream closes after its answer (Connection: close); a
        // safety net against one that never does.
        tokio::time::timeout(Duration::from_secs(60), up.read_to_end(&mut answer))
            .await
            .ok()?
            .ok()?;
        (!answer.is_empty()).then_some(answer)
    }
}

/// Resets a connection (RST, not FIN): linger 0, then close.
fn reset(client: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on close; a
    // zero linger does not block: the close sends a reset at once.
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
    drop(client);
}

/// The first line of a request.
fn request_line(msg: &[u8]) -> String {
    let end = msg
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(msg.len());
    String::from_utf8_lossy(&msg[..end]).into_owned()
}

/// Length of the head (through the blank line) of an HTTP message.
fn head_len(msg: &[u8]) -> usize {
    msg.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(msg.len(), |p| p + 4)
}

/// The value of header `name` in the head of `msg`.
fn header<'a>(msg: &'a [u8], name: &str) -> Option<&'a str> {
    let head = std::str::from_utf8(&msg[..head_len(msg)]).ok()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn closes(answer: &[u8]) -> bool {
    header(answer, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// The request with its `Connection` header replaced by `close`.
fn with_connection_close(request: &[u8]) -> Vec<u8> {
    let h = head_len(request);
    let head = String::from_utf8_lossy(&request[..h]);
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let is_connection = line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"));
        if i > 0 && is_connection {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&request[h..]);
    bytes
}

/// Reads one whole request (head and `Content-Length` body) from `client`;
/// `None` at the end of the connection. `buf` keeps bytes of the next one.
async fn read_request(client: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let h = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        if let Some(h) = h {
            let len: usize = header(buf, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= h + len {
                let rest = buf.split_off(h + len);
                return Some(std::mem::replace(buf, rest));
            }
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
