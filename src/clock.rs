//! The time seam. Everything in laned that needs "now" asks a [`Clock`], so
//! tests can move wall time and monotonic time independently, without sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;

/// Wall and monotonic time.
///
/// Wall time is what the till's clock says (it can jump, either way);
/// monotonic time only ever moves forward while the process runs.
pub trait Clock: Send + Sync + 'static {
    /// The wall clock.
    fn wall(&self) -> Timestamp;
    /// Monotonic time since an arbitrary fixed origin of this clock.
    fn monotonic(&self) -> Duration;
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
}

/// A clock moved by hand, for tests.
#[derive(Debug)]
pub struct ManualClock {
    inner: Mutex<(Timestamp, Duration)>,
}

impl ManualClock {
    /// A clock that reads `wall` and a monotonic time of zero.
    pub fn new(wall: Timestamp) -> Self {
        ManualClock {
            inner: Mutex::new((wall, Duration::ZERO)),
        }
    }

    /// Lets `by` pass: both wall and monotonic time move forward.
    pub fn advance(&self, by: Duration) {
        let mut g = self.lock();
        g.0 += by;
        g.1 += by;
    }

    /// Sets the wall clock only, as an operator changing the till's time would.
    pub fn set_wall(&self, wall: Timestamp) {
        self.lock().0 = wall;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Timestamp, Duration)> {
        // A poisoned lock only means another test thread panicked; the
        // timestamps inside are still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> Timestamp {
        self.lock().0
    }

    fn monotonic(&self) -> Duration {
        self.lock().1
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
}
