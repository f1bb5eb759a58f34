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

/// Where the machine's boot clock stands: which boot, and how long since
/// it began. Unlike the wall clock nobody can set it, and unlike a
/// process's monotonic clock it keeps running while the process is not
/// (and while the machine sleeps), so within one boot it measures how long
/// a daemon was down whatever happened to the wall clock meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTime {
    /// Identifies the boot (Linux: `/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Time since the boot began (Linux: `CLOCK_BOOTTIME`).
    pub since_boot: Duration,
}

/// Wall, monotonic and boot time.
///
/// Wall time is what the till's clock says (it can jump, either way);
/// monotonic time only ever moves forward while the process runs; boot
/// time only moves forward until the machine restarts.
pub trait Clock: Send + Sync + 'static {
    /// The wall clock.
    fn wall(&self) -> Timestamp;
    /// Monotonic time since an arbitrary fixed origin of this clock.
    fn monotonic(&self) -> Duration;
    /// The boot clock, where the platform has one.
    fn boot(&self) -> Option<BootTime>;
    /// Completes once [`Clock::monotonic`] reaches `deadline`.
    fn sleep_until(&self, deadline: Duration) -> Sleep;
}

/// The real clock of the machine.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
    /// This boot's id, read once (it cannot change while we run).
    boot_id: Option<String>,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
            boot_id: read_boot_id(),
        }
    }
}

/// The kernel's id of the current boot, a random UUID drawn at each boot.
#[cfg(target_os = "linux")]
fn read_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(not(target_os = "linux"))]
fn read_boot_id() -> Option<String> {
    None
}

/// `CLOCK_BOOTTIME`: monotonic, including time suspended, from the boot.
#[cfg(target_os = "linux")]
fn since_boot() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
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

    fn boot(&self) -> Option<BootTime> {
        #[cfg(target_os = "linux")]
        {
            self.boot_id.as_ref().map(|id| BootTime {
                boot_id: id.clone(),
                since_boot: since_boot(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
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
    /// The simulated machine: which boot, and the monotonic time at which
    /// it began (boot time is monotonic time since then).
    boot: std::sync::Mutex<(u32, Duration)>,
}

impl ManualClock {
    /// A clock that reads `wall` and a monotonic time of zero, on a machine
    /// that has just booted.
    pub fn new(wall: Timestamp) -> Self {
        ManualClock {
            now: watch::Sender::new((wall, Duration::ZERO)),
            boot: std::sync::Mutex::new((1, Duration::ZERO)),
        }
    }

    /// The machine is switched off for `off_for` and on again: a new boot
    /// whose boot clock starts at zero, and a wall clock `off_for` later
    /// (the hardware clock kept time). Monotonic time does not move: no
    /// process saw the time pass.
    pub fn reboot(&self, off_for: Duration) {
        let mono = self.monotonic();
        {
            let mut b = self.boot.lock().unwrap_or_else(|e| e.into_inner());
            *b = (b.0 + 1, mono);
        }
        self.now.send_modify(|(w, _)| *w += off_for);
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

    fn boot(&self) -> Option<BootTime> {
        let (n, origin) = *self.boot.lock().unwrap_or_else(|e| e.into_inner());
        Some(BootTime {
            boot_id: format!("manual-boot-{n}"),
            since_boot: self.monotonic().saturating_sub(origin),
        })
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
