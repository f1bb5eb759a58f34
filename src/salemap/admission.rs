//! Back-pressure: how many posting requests salemap works on at once, and
//! what it answers the rest.
//!
//! After a regional outage a whole fleet reconnects at once. Taking every
//! request would put thousands of batches in memory and on the database at
//! the same moment: the pool runs dry, answers time out, and overload looks
//! like an outage to the lanes. Instead a request that posts (a sale, a
//! batch, a closing) or beats must first be **admitted**:
//!
//! - at most [`Limits::in_flight`] are worked on (their bodies read, their
//!   transactions open);
//! - at most [`Limits::waiting`] more wait for a place, each at most
//!   [`Limits::wait`], with their bodies still unread;
//! - any other is answered at once `429 busy`, with a `Retry-After` drawn
//!   at random over the time the requests refused lately would take to
//!   serve, so the fleet comes back spread out instead of all at the same
//!   second. Nothing of a refused request is read or posted, so sending it
//!   again is always safe.
//!
//! The check runs before the body is read (an axum middleware on the
//! posting routes), so memory is bounded by the admitted requests alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::common::clock::Clock;
use crate::common::http::HttpError;
use crate::contract::codes;

/// The stable code of a `429` from back-pressure.
pub use crate::contract::codes::BUSY;

/// The longest `Retry-After` salemap sends when busy, in seconds.
pub const MAX_RETRY_AFTER: u32 = 60;

/// How many requests salemap admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests worked on at once.
    pub in_flight: usize,
    /// Requests that may wait for a place besides those.
    pub waiting: usize,
    /// The longest a request waits for a place before it is answered
    /// `429 busy`.
    pub wait: Duration,
}

/// Waiting requests per request in flight, by default.
const WAITING_PER_IN_FLIGHT: usize = 8;

/// How long a request waits for a place, by default: well inside a lane's
/// request timeout.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

impl Limits {
    /// The defaults for a database: SQLite has one writer, so a few
    /// requests in flight keep it busy (the others are parsed while it
    /// commits); PostgreSQL takes as many as the connection pool holds.
    pub fn for_database(db: &super::Database) -> Limits {
        let in_flight = match db {
            super::Database::Sqlite(_) => 4,
            super::Database::Postgres { .. } => super::store::postgres::POOL_SIZE,
        };
        Limits::with_in_flight(in_flight)
    }

    /// `in_flight` requests at once, and the default queue beside them.
    pub fn with_in_flight(in_flight: usize) -> Limits {
        let in_flight = in_flight.max(1);
        Limits {
            in_flight,
            waiting: in_flight.saturating_mul(WAITING_PER_IN_FLIGHT),
            wait: DEFAULT_WAIT,
        }
    }
}

/// The admission gate shared by the posting routes.
pub struct Admission {
    limits: Limits,
    /// Places to work on a request.
    running: Semaphore,
    /// Places in the building: in flight or waiting.
    admitted: Semaphore,
    clock: Arc<dyn Clock>,
    /// Average time a request holds its place, in microseconds (an
    /// exponentially weighted mean; 0 until the first one).
    service_us: AtomicU64,
    /// Requests refused in the current second and the one before, and
    /// which second that is (monotonic seconds).
    refusals: std::sync::Mutex<Refusals>,
    /// Requests refused since start (`/metrics`).
    refused_total: AtomicU64,
}

#[derive(Default)]
struct Refusals {
    second: u64,
    this: u64,
    last: u64,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// What `/metrics` shows of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Requests worked on now.
    pub in_flight: usize,
    /// Requests waiting for a place now.
    pub waiting: usize,
    /// Requests answered `429 busy` since start.
    pub refused_total: u64,
    /// The limits.
    pub limits: Limits,
}

impl Admission {
    /// A gate with these limits.
    pub fn new(limits: Limits, clock: Arc<dyn Clock>) -> Admission {
        let limits = Limits {
            in_flight: limits.in_flight.max(1),
            ..limits
        };
        Admission {
            running: Semaphore::new(limits.in_flight),
            admitted: Semaphore::new(limits.in_flight.saturating_add(limits.waiting)),
            limits,
            clock,
            service_us: AtomicU64::new(0),
            refusals: std::sync::Mutex::new(Refusals::default()),
            refused_total: AtomicU64::new(0),
        }
    }

    fn in_flight(&self) -> usize {
        self.limits.in_flight - self.running.available_permits()
    }

    /// The gate's figures now.
    pub fn gauges(&self) -> Gauges {
        let inside =
            self.limits.in_flight + self.limits.waiting - self.admitted.available_permits();
        let in_flight = self.in_flight();
        Gauges {
            in_flight,
            waiting: inside.saturating_sub(in_flight),
            refused_total: self.refused_total.load(Ordering::Relaxed),
            limits: self.limits,
        }
    }

    /// A place for a request: at once, or after waiting at most
    /// [`Limits::wait`] among at most [`Limits::waiting`] others; `None`
    /// if there is none to be had (answer [`Admission::busy`]).
    pub async fn enter(&self) -> Option<Pass<'_>> {
        let inside = self.admitted.try_acquire().ok()?;
        let deadline = self.clock.monotonic() + self.limits.wait;
        let place = tokio::select! {
            p = self.running.acquire() => p.ok(),
            () = self.clock.sleep_until(deadline) => None,
        }?;
        Some(Pass {
            gate: self,
            _inside: inside,
            _place: place,
            started: self.clock.monotonic(),
        })
    }

    /// Runs `serve` once the request has a place; `429 busy` if there is
    /// none to be had.
    pub async fn admit<F: std::future::Future<Output = Response>>(
        &self,
        serve: impl FnOnce() -> F,
    ) -> Response {
        match self.enter().await {
            Some(_pass) => serve().await,
            None => self.busy().into_response(),
        }
    }

    /// Folds one request's time into the average (weight 1/16).
    fn served(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .service_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 {
                    us.max(1)
                } else {
                    old - old / 16 + us / 16
                })
            });
    }

    /// The `429 busy` answer, its `Retry-After` drawn at random.
    pub fn busy(&self) -> HttpError {
        self.refused_total.fetch_add(1, Ordering::Relaxed);
        let second = self.clock.monotonic().as_secs();
        let recent = {
            let mut r = self
                .refusals
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if second != r.second {
                r.last = if second == r.second + 1 { r.this } else { 0 };
                r.this = 0;
                r.second = second;
            }
            r.this += 1;
            r.this + r.last
        };
        let window = retry_window(
            recent,
            self.limits,
            Duration::from_micros(self.service_us.load(Ordering::Relaxed)),
        );
        let retry_after =
            1 + u32::try_from(crate::common::os_random() % u64::from(window)).unwrap_or(0);
        HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::BUSY,
            "salemap is busy with other lanes' requests right now; nothing of this request was \
             read or posted. Send it again after Retry-After seconds.",
        )
        .with_retry_after(retry_after)
        .with_details(serde_json::json!({"retry_after_seconds": retry_after}))
    }
}

/// The span, in whole seconds (1 to [`MAX_RETRY_AFTER`]), over which the
/// refused requests are sent back: the time the ones refused lately and
/// the ones queued take to serve at `in_flight` at once.
fn retry_window(recent_refusals: u64, limits: Limits, service: Duration) -> u32 {
    let crowd = recent_refusals.saturating_add(limits.waiting as u64);
    let per_place = crowd / (limits.in_flight.max(1) as u64) + 1;
    let seconds = service
        .saturating_mul(u32::try_from(per_place).unwrap_or(u32::MAX))
        .as_secs_f64()
        .ceil();
    if seconds >= f64::from(MAX_RETRY_AFTER) {
        MAX_RETRY_AFTER
    } else {
        (seconds as u32).max(1)
    }
}

/// A request's place; given back (and its time counted) when dropped.
pub struct Pass<'a> {
    gate: &'a Admission,
    _inside: tokio::sync::SemaphorePermit<'a>,
    _place: tokio::sync::SemaphorePermit<'a>,
    started: Duration,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let took = self.gate.clock.monotonic().saturating_sub(self.started);
        self.gate.served(took);
    }
}

/// The axum middleware: admits the request before its body is read. A
/// refused request's body is read and dropped (up to the largest batch)
/// before the answer, so that the client, still sending, gets the `429`
/// and its `Retry-After` rather than a connection reset.
pub async fn gate(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    if let Some(_pass) = a.enter().await {
        return next.run(req).await;
    }
    let busy = a.busy();
    discard(req.into_body(), crate::contract::MAX_BATCH_BYTES).await;
    busy.into_response()
}

/// Reads `body` to its end without keeping it, up to `limit` bytes (a
/// longer one is left unread: the connection is then closed).
async fn discard(body: axum::body::Body, limit: usize) {
    use http_body::Body as _;
    let mut body = std::pin::pin!(body);
    let mut read = 0usize;
    while read <= limit {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                read = read.saturating_add(frame.data_ref().map_or(0, axum::body::Bytes::len));
            }
            Some(Err(_)) | None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::clock::ManualClock;

    fn limits(in_flight: usize, waiting: usize) -> Limits {
        Limits {
            in_flight,
            waiting,
            wait: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_window_grows_with_the_crowd_and_stays_within_bounds() {
        let ms = Duration::from_millis;
        // Nobody refused, fast service: one second.
        assert_eq!(retry_window(0, limits(4, 32), ms(20)), 1);
        // 1,000 refused, 100 ms a request, 16 at once: about 7 s.
        assert_eq!(retry_window(1000, limits(16, 128), ms(100)), 8);
        // An enormous crowd or a slow database: capped.
        assert_eq!(
            retry_window(1_000_000, limits(4, 32), ms(500)),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            retry_window(10, limits(4, 32), Duration::from_secs(3600)),
            MAX_RETRY_AFTER
        );
        // No measurement yet.
        assert_eq!(retry_window(10_000, limits(1, 0), Duration::ZERO), 1);
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(jiff::Timestamp::UNIX_EPOCH))
    }

    /// A request that holds its place until released (answering 200),
    /// once it is inside.
    async fn held(
        a: &Arc<Admission>,
    ) -> (
        tokio::task::JoinHandle<Response>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let (entered, inside) = tokio::sync::oneshot::channel::<()>();
        let first = tokio::spawn({
            let a = a.clone();
            async move {
                a.admit(|| async move {
                    let _ = entered.send(());
                    let _ = held.await;
                    StatusCode::OK.into_response()
                })
                .await
            }
        });
        inside.await.expect("the first is in");
        (first, release)
    }

    /// A second request (answering 201 once in), spawned and seen waiting.
    async fn waiting(a: &Arc<Admission>) -> tokio::task::JoinHandle<Response> {
        let second = tokio::spawn({
            let a = a.clone();
            async move {
                a.admit(|| async { StatusCode::CREATED.into_response() })
                    .await
            }
        });
        // The spawned task runs up to its wait at the next yields.
        for _ in 0..1000 {
            if a.gauges().waiting == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(a.gauges().waiting, 1, "the second request waits");
        second
    }

    #[tokio::test]
    async fn beyond_the_places_and_the_queue_a_request_is_refused_busy_with_a_retry_after() {
        let a = Arc::new(Admission::new(limits(1, 1), clock()));
        let (first, release) = held(&a).await;
        // The second waits for the place.
        let second = waiting(&a).await;
        // The third finds neither a place nor room to wait.
        let third = a.admit(|| async { StatusCode::OK.into_response() }).await;
        assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u32 = third.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=MAX_RETRY_AFTER).contains(&retry), "{retry}");
        assert_eq!(a.gauges().refused_total, 1);
        release.send(()).expect("release");
        assert_eq!(first.await.expect("join").status(), StatusCode::OK);
        assert_eq!(second.await.expect("join").status(), StatusCode::CREATED);
        let g = a.gauges();
        assert_eq!((g.in_flight, g.waiting), (0, 0));
    }

    #[tokio::test]
    async fn a_request_that_waits_past_the_wait_is_refused_busy() {
        let c = clock();
        let a = Arc::new(Admission::new(limits(1, 4), c.clone()));
        let (first, release) = held(&a).await;
        let second = waiting(&a).await;
        c.advance(Duration::from_secs(6));
        let answer = second.await.expect("join");
        assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
        release.send(()).expect("release");
        assert_eq!(first.await.expect("join").status(), StatusCode::OK);
    }
}
