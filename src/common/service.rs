//! The service manager: systemd's notification protocol (`sd_notify`).
//! `READY=1` once the database is open, migrated and the listener bound;
//! `STOPPING=1` when shutdown begins; `WATCHDOG=1` only after a round trip
//! through the store has succeeded, so a wedged writer (or database pool)
//! stops the pings and systemd restarts the service. Without
//! `NOTIFY_SOCKET` (not under systemd, or not on Unix) all of this is a
//! no-op.
//!
//! Also the one server runner both daemons use ([`bind`], [`run`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::common::clock::Clock;

/// Tells the service manager the service is ready, with a status line.
pub fn ready(status: &str) {
    send(&[Notice::Ready, Notice::Status(status)]);
}

/// Tells the service manager a reload (SIGHUP) has begun; [`ready`] ends it.
pub fn reloading() {
    send(&[
        Notice::Reloading,
        Notice::Status("reloading the configuration"),
    ]);
}

/// Tells the service manager shutdown has begun.
pub fn stopping() {
    send(&[Notice::Stopping, Notice::Status("stopping")]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this
/// process per `WATCHDOG_PID`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    #[cfg(unix)]
    {
        sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Pings the watchdog every quarter of `interval`, each time only after
/// `check` (a round trip through the store) succeeded; a failed or stuck
/// check sends nothing, and is logged. Returns when `stop` turns true.
pub async fn watchdog<F, Fut, E>(
    clock: Arc<dyn Clock>,
    interval: Duration,
    check: F,
    stop: watch::Receiver<bool>,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    pings(clock, interval, check, stop, || send(&[Notice::Watchdog])).await;
}

async fn pings<F, Fut, E>(
    clock: Arc<dyn Clock>,
    interval: Duration,
    check: F,
    mut stop: watch::Receiver<bool>,
    ping: impl Fn(),
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let period = interval / 4;
    // A check that takes longer than the whole interval is as good as
    // wedged: systemd will have restarted us by then.
    loop {
        let started = clock.monotonic();
        tokio::select! {
            r = tokio::time::timeout(interval, check()) => match r {
                Ok(Ok(())) => ping(),
                Ok(Err(e)) => tracing::error!(error = %e, "watchdog check failed; not pinging systemd"),
                Err(_) => tracing::error!("watchdog check did not finish; not pinging systemd"),
            },
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            () = clock.sleep_until(started + period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

enum Notice<'a> {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
    Status(&'a str),
}

fn send(notices: &[Notice<'_>]) {
    #[cfg(unix)]
    {
        let mut states: Vec<sd_notify::NotifyState<'_>> = notices
            .iter()
            .map(|n| match n {
                Notice::Ready => sd_notify::NotifyState::Ready,
                Notice::Reloading => sd_notify::NotifyState::Reloading,
                Notice::Stopping => sd_notify::NotifyState::Stopping,
                Notice::Watchdog => sd_notify::NotifyState::Watchdog,
                Notice::Status(s) => sd_notify::NotifyState::Status(s),
            })
            .collect();
        // systemd wants the time with RELOADING=1, to tell reloads apart.
        if notices.iter().any(|n| matches!(n, Notice::Reloading))
            && let Ok(now) = sd_notify::NotifyState::monotonic_usec_now()
        {
            states.push(now);
        }
        if let Err(e) = sd_notify::notify(&states) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }
    #[cfg(not(unix))]
    let _ = notices;
}

/// Binds the listening socket; the address it got (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `shutdown` resolves, as both
/// daemons do: under systemd with a watchdog, pings it only after `check`
/// (a round trip through the daemon's database) succeeds; tells systemd
/// it is stopping the moment shutdown begins; then lets requests in flight
/// finish, for at most `grace` when given (the lane: a till's retry of a
/// request cut short is harmless), and returns once the server and the
/// watchdog have stopped.
pub async fn run<F, Fut, E>(
    listener: TcpListener,
    router: axum::Router,
    limits: crate::common::serve::Limits,
    clock: Arc<dyn Clock>,
    check: F,
    grace: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    let (stop_tx, stop) = watch::channel(false);
    let watchdog = watchdog_interval()
        .map(|interval| tokio::spawn(watchdog(clock, interval, check, stop.clone())));
    let stop_tx = Arc::new(stop_tx);
    let on_shutdown = {
        let stop_tx = stop_tx.clone();
        async move {
            shutdown.await;
            stopping();
            let _ = stop_tx.send(true);
        }
    };
    let serve = crate::common::serve::serve(listener, router, limits, on_shutdown);
    let served = match grace {
        None => serve.await,
        Some(grace) => {
            let mut stop = stop;
            let grace_over = async {
                // Resolves only once shutdown has begun and the grace has passed.
                let _ = stop.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                r = serve => r,
                () = grace_over => {
                    tracing::warn!(
                        grace_seconds = grace.as_secs(),
                        "requests still in flight after the shutdown grace; closing anyway \
                         (their sales are stored if the writer had them, and a till retry is \
                         harmless)"
                    );
                    Ok(())
                }
            }
        }
    };
    // Also when the server failed before any shutdown: the watchdog stops.
    let _ = stop_tx.send(true);
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    served
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use tokio::sync::watch;

    use super::pings;
    use crate::common::clock::{Clock, ManualClock};

    const INTERVAL: Duration = Duration::from_secs(8);

    async fn run(
        check: impl Fn() -> std::future::Ready<Result<(), String>> + Send + 'static,
    ) -> (
        Arc<AtomicU32>,
        Arc<ManualClock>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let clock = Arc::new(ManualClock::new("2026-11-23T00:00:00Z".parse().unwrap()));
        let count = Arc::new(AtomicU32::new(0));
        let (stop, stopped) = watch::channel(false);
        let c = count.clone();
        let task = tokio::spawn(pings(
            clock.clone() as Arc<dyn Clock>,
            INTERVAL,
            check,
            stopped,
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        ));
        (count, clock, stop, task)
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn pings_once_per_quarter_interval_while_the_store_answers() {
        let (count, clock, stop, task) = run(|| std::future::ready(Ok(()))).await;
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        clock.advance(INTERVAL / 4 - Duration::from_millis(1));
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_millis(1));
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 2);
        let _ = stop.send(true);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_store_gets_no_ping() {
        let (count, clock, stop, task) =
            run(|| std::future::ready(Err("the writer is gone".into()))).await;
        settle().await;
        clock.advance(INTERVAL);
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
        let _ = stop.send(true);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_wedged_store_gets_no_ping() {
        let clock = Arc::new(ManualClock::new("2026-11-23T00:00:00Z".parse().unwrap()));
        let count = Arc::new(AtomicU32::new(0));
        let (stop, stopped) = watch::channel(false);
        let c = count.clone();
        let task = tokio::spawn(pings(
            clock.clone() as Arc<dyn Clock>,
            INTERVAL,
            std::future::pending::<Result<(), String>>,
            stopped,
            move || {
                c.fetch_add(1, Ordering::SeqCst);
            },
        ));
        settle().await;
        clock.advance(INTERVAL);
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 0);
        let _ = stop.send(true);
        task.await.unwrap();
    }
}
