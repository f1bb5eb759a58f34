//! The time seam. Everything in laned that needs "now", or needs to wait,
//! asks a [`Clock`], so tests can move wall time and monotonic time
//! independently, without sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::watch;

/// A future that completes when a clock reaches a deadline.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Wall and monotonic time.
///
/// Wall time is what the till's clock says (it can jump, either way);
/// monotonic time only ever moves forward while the process runs.
pub trait Clock: Send + Sync + 'static {
    /// The wall clock.
    fn wall(&self) -> Timestamp;
    /// Monotonic time since an arbitrary fixed origin of this clock.
    fn monotonic(&self) -> Duration;
    /// Completes once [`Clock::monotonic`] reaches `deadline`.
    fn sleep_until(&self, deadline: Duration) -> Sleep;
}

/// The real clock of the machine.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn wall(&self) -> Timestamp {
        Timestamp::now()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep_until(&self, deadline: Duration) -> Sleep {
        let at = tokio::time::Instant::from_std(self.origin + deadline);
        Box::pin(tokio::time::sleep_until(at))
    }
}

/// A clock moved by hand, for tests. Sleepers wake when the clock is
/// advanced past their deadline, never on their own.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<(Timestamp, Duration)>,
}

impl ManualClock {
    /// A clock that reads `wall` and a monotonic time of zero.
    pub fn new(wall: Timestamp) -> Self {
        ManualClock {
            now: watch::Sender::new((wall, Duration::ZERO)),
        }
    }

    /// Lets `by` pass: both wall and monotonic time move forward, and
    /// sleepers whose deadline has come wake up.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|(w, m)| {
            *w += by;
            *m += by;
        });
    }

    /// Sets the wall clock only, as an operator changing the till's time would.
    pub fn set_wall(&self, wall: Timestamp) {
        self.now.send_modify(|(w, _)| *w = wall);
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> Timestamp {
        self.now.borrow().0
    }

    fn monotonic(&self) -> Duration {
        self.now.borrow().1
    }

    fn sleep_until(&self, deadline: Duration) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // If the clock is dropped the sleeper never wakes, like a
            // sleep that outlives its runtime.
            if rx.wait_for(|(_, m)| *m >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_wall_and_monotonic_together_but_set_wall_moves_only_wall() {
        let start: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let c = ManualClock::new(start);
        c.advance(Duration::from_secs(60));
        assert_eq!(
            c.wall(),
            "2026-11-22T10:01:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(c.monotonic(), Duration::from_secs(60));
        c.set_wall("2026-11-21T00:00:00Z".parse().unwrap());
        assert_eq!(c.monotonic(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn manual_sleep_wakes_only_when_advanced_past_the_deadline() {
        let c = ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap());
        let mut s = c.sleep_until(Duration::from_secs(10));
        let poll = |s: &mut Sleep| {
            let waker = std::task::Waker::noop();
            s.as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        };
        assert!(!poll(&mut s));
        c.advance(Duration::from_secs(9));
        assert!(!poll(&mut s));
        c.advance(Duration::from_secs(1));
        assert!(poll(&mut s));
    }
}
