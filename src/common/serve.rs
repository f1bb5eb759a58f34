//! The HTTP server loop both daemons run (laned's till API and salemap's
//! contract), on hyper's HTTP/1 connections:
//!
//! - a **header-read timeout**: a connection must deliver a complete request
//!   head within it, or it is closed. The same timer runs while a
//!   keep-alive connection waits for its next request, so idle connections
//!   are closed too: no client can hold a connection open for nothing;
//! - a **connection limit**: beyond it, a new connection is closed at once
//!   (the client sees a connection error and retries, as tills and lanes
//!   do), logged once per episode with the count when it ends;
//! - a **body deadline**: once its head is in, a request's body must
//!   arrive at [`MIN_BODY_RATE`] on average (plus the header-read timeout
//!   for a start), or the request is answered `408 request_timeout` and the
//!   connection closed: a client that stops sending mid-body cannot hold
//!   a connection either;
//! - **half-closed connections are answered**: a client that shuts its
//!   write side after a complete request (some tills do) gets its answer;
//! - a **graceful stop**: no new connections, idle ones closed, requests in
//!   flight finished.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// What a server allows its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time to deliver a complete request head, and to send the next one on
    /// a keep-alive connection.
    pub header_read_timeout: Duration,
}

/// The slowest average rate, in bytes a second, at which a request body
/// must arrive once its head is in (after the header-read timeout's worth
/// of grace): a 1 MiB sale over a poor link has 16 s more, a 32 MiB batch
/// 512 s more.
pub const MIN_BODY_RATE: u64 = 64 * 1024;

/// A request body that stopped arriving before its deadline: the handler
/// answers `408 request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

impl BodyTimeout {
    /// Whether `e` (an extractor's rejection, say) comes from a body that
    /// did not arrive in time.
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if err.is::<BodyTimeout>() {
                return true;
            }
            cur = err.source();
        }
        false
    }
}

/// Accepted sockets that fail before they are served (the client gave up
/// in the accept queue) are skipped; any other accept error (out of file
/// descriptors, say) pauses accepting this long, rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then stops
/// accepting, closes idle connections and waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .half_close(true);
    let gate = Arc::new(Gate::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept a connection; pausing briefly");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Over the limit, the socket is dropped (closed) right here.
        let Some(permit) = gate.admit() else {
            continue;
        };
        let router = router.clone();
        let grace = limits.header_read_timeout;
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let deadline = body_deadline(&req, grace);
            let req = req.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline)));
            let mut router = router.clone();
            async move { router.call(req).await }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// How long a request's body may take: the grace, plus its announced
/// length at [`MIN_BODY_RATE`] (a body of unannounced length gets the
/// grace only, then whatever it sent must do).
fn body_deadline(req: &hyper::Request<Incoming>, grace: Duration) -> Duration {
    let len = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    grace + Duration::from_secs(len / MIN_BODY_RATE)
}

/// A request body that fails with [`BodyTimeout`] once its deadline has
/// passed, however the bytes trickle in.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, within: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The connection limit, and the log of its episodes.
struct Gate {
    open: Arc<Semaphore>,
    max: usize,
    /// The limit was hit and no connection has closed since.
    at_limit: AtomicBool,
    /// Connections closed at the limit during this episode.
    refused: AtomicU64,
}

impl Gate {
    fn new(max: usize) -> Gate {
        // Beyond this a semaphore cannot count; no server gets near it.
        let max = max.min(Semaphore::MAX_PERMITS);
        Gate {
            open: Arc::new(Semaphore::new(max)),
            max,
            at_limit: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection, or `None` at the limit.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        match self.open.clone().try_acquire_owned() {
            Ok(permit) => Some(Slot {
                permit: Some(permit),
                gate: self.clone(),
            }),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                if !self.at_limit.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        max_connections = self.max,
                        "connection limit of {} reached: closing new connections until some \
                         close (a connection that sends no complete request is closed after \
                         header_read_timeout)",
                        self.max
                    );
                }
                None
            }
        }
    }
}

/// An open connection's place under the limit.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Free the place first, so that the log line below means a new
        // connection will be taken.
        drop(self.permit.take());
        if self.gate.at_limit.swap(false, Ordering::Relaxed) {
            let refused = self.gate.refused.swap(0, Ordering::Relaxed);
            tracing::info!(
                refused,
                "below the connection limit again; {refused} connection(s) were closed at the limit"
            );
        }
    }
}
