//! Lane state as the till sees it, and the sync ceiling (DESIGN §5): the
//! offline clock that winding the wall clock back cannot fool, and the rule
//! that turns offline time into online, offline, warning or suspended.
//!
//! The rules and the clock are here; wiring them into the daemon (the
//! periodic checkpoint, refusing sales when suspended, status) is the next
//! step of issue 4.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

/// Whether the lane may sell, and how close it is to the sync ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LaneState {
    /// The last exchange with the back-end succeeded.
    Online,
    /// No successful exchange recently (or ever); sales are accepted.
    Offline,
    /// Offline for longer than `warn_after`; sales are still accepted.
    Warning,
    /// Offline for longer than the sync ceiling; new sales are refused.
    Suspended,
}

/// The limits a lane enforces (DESIGN §5). `None` switches a rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Offline this long (continuously): suspended.
    pub sync_ceiling: Option<Duration>,
    /// Offline this long: warning.
    pub warn_after: Duration,
    /// The oldest pending or stuck sale older than this: suspended.
    pub max_unsent_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sync_ceiling: Some(Duration::from_secs(24 * 3600)),
            warn_after: Duration::from_secs(20 * 3600),
            max_unsent_age: None,
        }
    }
}

/// Which rule a lane is closest to (or past).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Continuous time without a successful exchange.
    SyncCeiling,
    /// Age of the oldest sale not yet delivered.
    MaxUnsentAge,
}

/// The lane's state with respect to its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// online, offline, warning or suspended.
    pub state: LaneState,
    /// The nearest limit and the time left before it (zero when past).
    pub nearest: Option<(Rule, Duration)>,
}

/// Decides the lane state from the offline time, whether the last
/// exchange succeeded, and the age of the oldest undelivered sale.
pub fn verdict(
    limits: &Limits,
    offline: Duration,
    last_ok: bool,
    oldest_unsent: Option<Duration>,
) -> Verdict {
    let mut nearest: Option<(Rule, Duration)> = None;
    let mut consider = |rule, limit: Duration, used: Duration| {
        let left = limit.saturating_sub(used);
        if nearest.is_none_or(|(_, l)| left < l) {
            nearest = Some((rule, left));
        }
    };
    if let Some(c) = limits.sync_ceiling {
        consider(Rule::SyncCeiling, c, offline);
    }
    if let (Some(m), Some(age)) = (limits.max_unsent_age, oldest_unsent) {
        consider(Rule::MaxUnsentAge, m, age);
    }
    let state = if nearest.is_some_and(|(_, left)| left.is_zero()) {
        LaneState::Suspended
    } else if offline >= limits.warn_after {
        LaneState::Warning
    } else if last_ok {
        LaneState::Online
    } else {
        LaneState::Offline
    };
    Verdict { state, nearest }
}

/// What the offline clock keeps on disk (the `lane_clock` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offline time accumulated at the checkpoint.
    pub offline: Duration,
    /// Wall time of the checkpoint.
    pub at: Option<Timestamp>,
    /// Clock anomalies seen so far.
    pub anomalies: u32,
    /// When the last anomaly was seen.
    pub last_anomaly_at: Option<Timestamp>,
    /// How far back the wall clock had gone, that time.
    pub last_anomaly_back: Option<Duration>,
}

/// Offline time, accumulated rather than read off the wall clock: while the
/// daemon runs it grows with monotonic time; across a stop it grows by the
/// wall time between the last checkpoint and the start (a till switched off
/// is offline). A wall clock behind the last checkpoint adds nothing and is
/// recorded as an anomaly. Only a successful exchange resets it.
#[derive(Debug, Clone)]
pub struct OfflineClock {
    /// Offline time at `mark`.
    offline_at_mark: Duration,
    /// Monotonic time of the mark.
    mark: Duration,
    anomalies: u32,
    last_anomaly_at: Option<Timestamp>,
    last_anomaly_back: Option<Duration>,
}

impl OfflineClock {
    /// Resumes from the last checkpoint at start-up.
    pub fn resume(cp: &Checkpoint, wall: Timestamp, mono: Duration) -> OfflineClock {
        let mut c = OfflineClock {
            offline_at_mark: cp.offline,
            mark: mono,
            anomalies: cp.anomalies,
            last_anomaly_at: cp.last_anomaly_at,
            last_anomaly_back: cp.last_anomaly_back,
        };
        if let Some(at) = cp.at {
            match Duration::try_from(wall.duration_since(at)) {
                // The daemon was stopped this long: that time was offline.
                Ok(down) => c.offline_at_mark += down,
                // The wall clock is behind the last checkpoint: someone set
                // it back. Add nothing, and remember.
                Err(_) => {
                    let back = Duration::try_from(at.duration_since(wall)).unwrap_or_default();
                    c.anomalies += 1;
                    c.last_anomaly_at = Some(wall);
                    c.last_anomaly_back = Some(back);
                }
            }
        }
        c
    }

    /// Offline time now.
    pub fn offline(&self, mono: Duration) -> Duration {
        self.offline_at_mark + mono.saturating_sub(self.mark)
    }

    /// A successful exchange with the back-end: offline time is zero again.
    pub fn success(&mut self, mono: Duration) {
        self.offline_at_mark = Duration::ZERO;
        self.mark = mono;
    }

    /// What to write to disk now.
    pub fn checkpoint(&self, wall: Timestamp, mono: Duration) -> Checkpoint {
        Checkpoint {
            offline: self.offline(mono),
            at: Some(wall),
            anomalies: self.anomalies,
            last_anomaly_at: self.last_anomaly_at,
            last_anomaly_back: self.last_anomaly_back,
        }
    }

    /// Clock anomalies seen (count, last time, how far back).
    pub fn anomalies(&self) -> (u32, Option<Timestamp>, Option<Duration>) {
        (self.anomalies, self.last_anomaly_at, self.last_anomaly_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * H)
    }

    #[test]
    fn thresholds_hold_to_the_second() {
        let l = Limits::default();
        let v = |offline: Duration, ok| verdict(&l, offline, ok, None).state;
        assert_eq!(v(Duration::ZERO, true), LaneState::Online);
        assert_eq!(v(Duration::from_secs(1), false), LaneState::Offline);
        assert_eq!(
            v(hours(20) - Duration::from_secs(1), false),
            LaneState::Offline
        );
        assert_eq!(v(hours(20), false), LaneState::Warning);
        assert_eq!(
            v(hours(24) - Duration::from_secs(1), false),
            LaneState::Warning
        );
        assert_eq!(v(hours(24), false), LaneState::Suspended);
        let r = verdict(&l, hours(23), false, None).nearest;
        assert_eq!(r, Some((Rule::SyncCeiling, hours(1))));
        // The ceiling can be switched off.
        let off = Limits {
            sync_ceiling: None,
            ..l
        };
        assert_eq!(
            verdict(&off, hours(1000), false, None).state,
            LaneState::Warning
        );
    }

    #[test]
    fn the_oldest_unsent_sale_can_suspend_a_lane_that_is_online() {
        let l = Limits {
            max_unsent_age: Some(hours(30 * 24)),
            ..Limits::default()
        };
        let v = verdict(&l, Duration::ZERO, true, Some(hours(30 * 24)));
        assert_eq!(v.state, LaneState::Suspended);
        assert_eq!(v.nearest, Some((Rule::MaxUnsentAge, Duration::ZERO)));
        let v = verdict(&l, hours(1), false, Some(hours(30 * 24 - 2)));
        assert_eq!(v.nearest, Some((Rule::MaxUnsentAge, hours(2))));
    }

    #[test]
    fn offline_time_grows_with_monotonic_time_and_resets_on_success() {
        let mut c = OfflineClock::resume(
            &Checkpoint::default(),
            ts("2026-11-22T10:00:00Z"),
            Duration::ZERO,
        );
        assert_eq!(c.offline(hours(5)), hours(5));
        c.success(hours(5));
        assert_eq!(c.offline(hours(6)), hours(1));
    }

    #[test]
    fn a_stopped_daemon_counts_its_downtime_as_offline() {
        // Stopped while online (offline 0 at the checkpoint), off for 25 h.
        let cp = Checkpoint {
            offline: Duration::ZERO,
            at: Some(ts("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        let c = OfflineClock::resume(&cp, ts("2026-11-23T11:00:00Z"), Duration::ZERO);
        assert_eq!(c.offline(Duration::ZERO), hours(25));
        assert_eq!(
            verdict(&Limits::default(), c.offline(Duration::ZERO), false, None).state,
            LaneState::Suspended
        );
        // Restarted mid-offline: the accumulated time is kept.
        let cp = Checkpoint {
            offline: hours(10),
            at: Some(ts("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        let c = OfflineClock::resume(&cp, ts("2026-11-22T10:00:30Z"), Duration::ZERO);
        assert_eq!(
            c.offline(Duration::ZERO),
            hours(10) + Duration::from_secs(30)
        );
    }

    #[test]
    fn setting_the_clock_back_adds_nothing_takes_nothing_and_is_recorded() {
        let cp = Checkpoint {
            offline: hours(22),
            at: Some(ts("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        // 30 h back.
        let c = OfflineClock::resume(&cp, ts("2026-11-21T04:00:00Z"), Duration::ZERO);
        assert_eq!(
            c.offline(Duration::ZERO),
            hours(22),
            "accumulated time was reduced"
        );
        let (n, at, back) = c.anomalies();
        assert_eq!(
            (n, at, back),
            (1, Some(ts("2026-11-21T04:00:00Z")), Some(hours(30)))
        );
        // Two more hours of running take it past the ceiling, whatever the
        // wall clock says.
        assert_eq!(
            verdict(&Limits::default(), c.offline(hours(2)), false, None).state,
            LaneState::Suspended
        );
        // The anomaly survives the next checkpoint.
        assert_eq!(
            c.checkpoint(ts("2026-11-21T06:00:00Z"), hours(2)).anomalies,
            1
        );
    }
}
