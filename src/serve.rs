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
//! - **half-closed connections are answered**: a client that shuts its
//!   write side after a complete request (some tills do) gets its answer;
//! - a **graceful stop**: no new connections, idle ones closed, requests in
//!   flight finished.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a server allows its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Time to deliver a complete request head, and to send the next one on
    /// a keep-alive connection.
    pub header_read_timeout: Duration,
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
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
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
