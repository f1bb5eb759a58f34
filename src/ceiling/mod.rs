//! Lane state as the till sees it, and the sync ceiling (DESIGN §5): the
//! offline clock that winding the wall clock back cannot fool, and the rules
//! that turn offline time into online, offline, warning or suspended.
//!
//! This module is pure: time comes in as arguments. [`monitor`] holds the
//! live state, checkpoints it and logs state changes.

pub mod monitor;

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

pub use monitor::{Ceiling, CeilingError, Snapshot};

/// A wall clock that moves this much more or less than monotonic time
/// between two looks has been changed (or the till slept). Smaller steps
/// (NTP corrections) are ignored.
pub const CLOCK_JUMP_TOLERANCE: Duration = Duration::from_secs(10);

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
    /// Past a limit; new sales are refused.
    Suspended,
}

impl LaneState {
    /// The state's name as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            LaneState::Online => "online",
            LaneState::Offline => "offline",
            LaneState::Warning => "warning",
            LaneState::Suspended => "suspended",
        }
    }
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
    /// Offline this long in one calendar month: suspended while offline.
    pub monthly_offline_budget: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sync_ceiling: Some(Duration::from_secs(24 * 3600)),
            warn_after: Duration::from_secs(20 * 3600),
            max_unsent_age: None,
            monthly_offline_budget: None,
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
    /// Offline time this calendar month.
    MonthlyOfflineBudget,
}

impl Rule {
    /// The rule's config key.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SyncCeiling => "sync_ceiling",
            Rule::MaxUnsentAge => "max_unsent_age",
            Rule::MonthlyOfflineBudget => "monthly_offline_budget",
        }
    }
}

/// What the state depends on, at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inputs {
    /// Time since the last successful exchange (downtime included).
    pub offline: Duration,
    /// The last exchange succeeded.
    pub online: bool,
    /// Age of the oldest pending or stuck sale.
    pub oldest_unsent: Option<Duration>,
    /// Offline time booked to the current calendar month.
    pub month_used: Duration,
}

/// The lane's state with respect to its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// online, offline, warning or suspended.
    pub state: LaneState,
    /// The nearest limit and the time left before it (zero when past).
    pub nearest: Option<(Rule, Duration)>,
}

/// Decides the lane state. The monthly budget only counts while the lane is
/// offline, so it can suspend only an offline lane; the other rules apply
/// whatever the last exchange did.
pub fn verdict(limits: &Limits, i: Inputs) -> Verdict {
    let mut nearest: Option<(Rule, Duration)> = None;
    let mut consider = |rule, limit: Duration, used: Duration| {
        let left = limit.saturating_sub(used);
        if nearest.is_none_or(|(_, l)| left < l) {
            nearest = Some((rule, left));
        }
    };
    if let Some(c) = limits.sync_ceiling {
        consider(Rule::SyncCeiling, c, i.offline);
    }
    if let (Some(m), Some(age)) = (limits.max_unsent_age, i.oldest_unsent) {
        consider(Rule::MaxUnsentAge, m, age);
    }
    if let Some(b) = limits.monthly_offline_budget
        && !i.online
    {
        consider(Rule::MonthlyOfflineBudget, b, i.month_used);
    }
    let state = if nearest.is_some_and(|(_, left)| left.is_zero()) {
        LaneState::Suspended
    } else if i.offline >= limits.warn_after {
        LaneState::Warning
    } else if i.online {
        LaneState::Online
    } else {
        LaneState::Offline
    };
    Verdict { state, nearest }
}

/// How long until the verdict can change on its own (a threshold is
/// crossed), if the inputs keep growing with time.
pub fn next_change(limits: &Limits, i: Inputs) -> Option<Duration> {
    let ahead = |limit: Duration, used: Duration| limit.checked_sub(used).filter(|d| !d.is_zero());
    [
        limits.sync_ceiling.and_then(|c| ahead(c, i.offline)),
        ahead(limits.warn_after, i.offline),
        limits
            .max_unsent_age
            .zip(i.oldest_unsent)
            .and_then(|(m, age)| ahead(m, age)),
        limits
            .monthly_offline_budget
            .filter(|_| !i.online)
            .and_then(|b| ahead(b, i.month_used)),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Clock anomalies: the wall clock found behind where it had been.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// How many so far.
    pub count: u32,
    /// When the last one was seen (wall time, as the clock then said).
    pub last_at: Option<Timestamp>,
    /// How far back the clock had gone, that time.
    #[serde(serialize_with = "secs")]
    pub last_back: Option<Duration>,
}

fn secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

/// A calendar month, as `(year, month)`.
pub type Month = (i16, i8);

/// What the offline clock keeps on disk (the `lane_clock` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offline time accumulated at the checkpoint.
    pub offline: Duration,
    /// Wall time of the checkpoint.
    pub at: Option<Timestamp>,
    /// Lane time of the checkpoint (see [`OfflineClock::lane_time`]).
    pub lane_time: Option<Timestamp>,
    /// The last exchange had succeeded.
    pub online: bool,
    /// Clock anomalies seen so far.
    pub anomalies: Anomalies,
    /// The month the budget figure is for.
    pub month: Option<Month>,
    /// Offline time booked to that month.
    pub month_used: Duration,
}

/// Offline time, accumulated rather than read off the wall clock: while the
/// daemon runs it grows with monotonic time; across a stop it grows by the
/// wall time between the last checkpoint and the start (a till switched off
/// is offline). A wall clock behind where it was adds nothing and is
/// recorded as an anomaly; a wall clock ahead of monotonic time (set
/// forward, or a till that slept) adds the difference: moving the clock can
/// only make the lane stricter. Only a successful exchange resets it.
///
/// It also keeps *lane time*, a wall-clock estimate that never goes back
/// (it moves with the offline clock), used for the month of the budget and
/// the age of unsent sales.
#[derive(Debug, Clone)]
pub struct OfflineClock {
    offline: Duration,
    lane_time: Timestamp,
    last_wall: Timestamp,
    last_mono: Duration,
    online: bool,
    /// The part of `offline` already booked to the monthly budget.
    booked: Duration,
    month: Option<Month>,
    month_used: Duration,
    anomalies: Anomalies,
    tz: TimeZone,
}

fn span(from: Timestamp, to: Timestamp) -> Result<Duration, Duration> {
    let d = to.duration_since(from);
    Duration::try_from(d).map_err(|_| Duration::try_from(-d).unwrap_or_default())
}

impl OfflineClock {
    /// Resumes from the last checkpoint at start-up. The lane starts
    /// offline: it has not talked to the back-end yet.
    pub fn resume(cp: &Checkpoint, tz: TimeZone, wall: Timestamp, mono: Duration) -> OfflineClock {
        let mut c = OfflineClock {
            offline: cp.offline,
            lane_time: cp.lane_time.or(cp.at).unwrap_or(wall),
            last_wall: wall,
            last_mono: mono,
            online: false,
            // Stopped while offline, everything up to the checkpoint was
            // booked; stopped while online, nothing of this episode was.
            booked: if cp.online {
                Duration::ZERO
            } else {
                cp.offline
            },
            month: cp.month,
            month_used: cp.month_used,
            anomalies: cp.anomalies,
            tz,
        };
        if let Some(at) = cp.at {
            match span(at, wall) {
                // The daemon was stopped this long: that time was offline.
                Ok(down) => {
                    c.offline += down;
                    c.lane_time += down;
                }
                // The wall clock is behind the last checkpoint: someone set
                // it back. Add nothing, and remember.
                Err(back) => c.anomaly(wall, back),
            }
        }
        c.book();
        c
    }

    fn anomaly(&mut self, wall: Timestamp, back: Duration) {
        self.anomalies.count += 1;
        self.anomalies.last_at = Some(wall);
        self.anomalies.last_back = Some(back);
    }

    /// Brings the clock to the present: adds the time passed since the last
    /// look, notices wall clock jumps, and books offline time to the month.
    pub fn observe(&mut self, wall: Timestamp, mono: Duration) {
        let ran = mono.saturating_sub(self.last_mono);
        let mut passed = ran;
        match span(self.last_wall, wall) {
            Ok(w) if w > ran + CLOCK_JUMP_TOLERANCE => passed = w,
            Ok(w) if w + CLOCK_JUMP_TOLERANCE < ran => self.anomaly(wall, ran - w),
            Err(back) => self.anomaly(wall, back + ran),
            Ok(_) => {}
        }
        self.offline += passed;
        self.lane_time += passed;
        self.last_wall = wall;
        self.last_mono = mono;
        self.book();
    }

    /// Books the offline time not yet booked to the month it fell in.
    fn book(&mut self) {
        if self.online {
            return;
        }
        let add = self.offline.saturating_sub(self.booked);
        self.booked = self.offline;
        if add.is_zero() {
            return;
        }
        let end = self.lane_time;
        let zoned = end.to_zoned(self.tz.clone());
        let key = (zoned.year(), zoned.month());
        let in_month = zoned
            .date()
            .first_of_month()
            .to_zoned(self.tz.clone())
            .ok()
            .and_then(|start| span(start.timestamp(), end).ok())
            .map_or(add, |since_start| add.min(since_start));
        match self.month {
            // Lane time never goes back, but a month read from an older
            // checkpoint might be ahead: keep booking to it.
            Some(m) if m > key => self.month_used += add,
            Some(m) if m == key => self.month_used += in_month,
            _ => {
                self.month = Some(key);
                self.month_used = in_month;
            }
        }
    }

    /// A successful exchange with the back-end: offline time is zero again.
    pub fn success(&mut self, wall: Timestamp, mono: Duration) {
        self.observe(wall, mono);
        self.offline = Duration::ZERO;
        self.booked = Duration::ZERO;
        self.online = true;
    }

    /// A failed exchange: the lane is offline, and has been since the last
    /// success.
    pub fn failure(&mut self, wall: Timestamp, mono: Duration) {
        self.observe(wall, mono);
        self.online = false;
        self.book();
    }

    /// The inputs of [`verdict`], as of the last observation.
    pub fn inputs(&self, oldest_unsent_at: Option<Timestamp>) -> Inputs {
        Inputs {
            offline: self.offline,
            online: self.online,
            oldest_unsent: oldest_unsent_at.map(|t| span(t, self.lane_time).unwrap_or_default()),
            month_used: self.month_used_now(),
        }
    }

    /// Offline time booked to the current month (zero once a new month has
    /// begun and nothing was booked to it yet).
    fn month_used_now(&self) -> Duration {
        let z = self.lane_time.to_zoned(self.tz.clone());
        match self.month {
            Some(m) if m >= (z.year(), z.month()) => self.month_used,
            _ => Duration::ZERO,
        }
    }

    /// What to write to disk, as of the last observation.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            offline: self.offline,
            at: Some(self.last_wall),
            lane_time: Some(self.lane_time),
            online: self.online,
            anomalies: self.anomalies,
            month: self.month,
            month_used: self.month_used,
        }
    }

    /// Offline time, as of the last observation.
    pub fn offline(&self) -> Duration {
        self.offline
    }

    /// The last exchange succeeded.
    pub fn online(&self) -> bool {
        self.online
    }

    /// Lane time: a wall-clock estimate that never goes back.
    pub fn lane_time(&self) -> Timestamp {
        self.lane_time
    }

    /// Clock anomalies seen so far.
    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }

    /// The month of the budget figure, and the figure.
    pub fn month(&self) -> (Option<Month>, Duration) {
        (self.month, self.month_used_now())
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

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    fn offline_for(offline: Duration) -> Inputs {
        Inputs {
            offline,
            ..Inputs::default()
        }
    }

    #[test]
    fn thresholds_hold_to_the_second() {
        let l = Limits::default();
        let v = |i: Inputs| verdict(&l, i).state;
        let second = Duration::from_secs(1);
        assert_eq!(
            v(Inputs {
                online: true,
                ..Inputs::default()
            }),
            LaneState::Online
        );
        assert_eq!(v(offline_for(second)), LaneState::Offline);
        assert_eq!(v(offline_for(hours(20) - second)), LaneState::Offline);
        assert_eq!(v(offline_for(hours(20))), LaneState::Warning);
        assert_eq!(v(offline_for(hours(24) - second)), LaneState::Warning);
        assert_eq!(v(offline_for(hours(24))), LaneState::Suspended);
        let r = verdict(&l, offline_for(hours(23))).nearest;
        assert_eq!(r, Some((Rule::SyncCeiling, hours(1))));
        assert_eq!(next_change(&l, offline_for(hours(19))), Some(hours(1)));
        assert_eq!(next_change(&l, offline_for(hours(21))), Some(hours(3)));
        assert_eq!(next_change(&l, offline_for(hours(24))), None);
        // The ceiling can be switched off.
        let off = Limits {
            sync_ceiling: None,
            ..l
        };
        assert_eq!(
            verdict(&off, offline_for(hours(1000))).state,
            LaneState::Warning
        );
    }

    #[test]
    fn the_oldest_unsent_sale_can_suspend_a_lane_that_is_online() {
        let l = Limits {
            max_unsent_age: Some(hours(30 * 24)),
            ..Limits::default()
        };
        let i = Inputs {
            online: true,
            oldest_unsent: Some(hours(30 * 24)),
            ..Inputs::default()
        };
        let v = verdict(&l, i);
        assert_eq!(v.state, LaneState::Suspended);
        assert_eq!(v.nearest, Some((Rule::MaxUnsentAge, Duration::ZERO)));
        let i = Inputs {
            offline: hours(1),
            oldest_unsent: Some(hours(30 * 24 - 2)),
            ..Inputs::default()
        };
        assert_eq!(verdict(&l, i).nearest, Some((Rule::MaxUnsentAge, hours(2))));
    }

    #[test]
    fn the_monthly_budget_suspends_only_an_offline_lane() {
        let l = Limits {
            monthly_offline_budget: Some(hours(168)),
            ..Limits::default()
        };
        let spent = Inputs {
            month_used: hours(168),
            ..Inputs::default()
        };
        assert_eq!(verdict(&l, spent).state, LaneState::Suspended);
        let online = Inputs {
            online: true,
            ..spent
        };
        assert_eq!(verdict(&l, online).state, LaneState::Online);
        assert_eq!(
            verdict(&l, online).nearest.map(|n| n.0),
            Some(Rule::SyncCeiling)
        );
    }

    #[test]
    fn offline_time_grows_with_monotonic_time_and_resets_on_success() {
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO);
        c.observe(t0 + hours(5), hours(5));
        assert_eq!(c.offline(), hours(5));
        c.success(t0 + hours(5), hours(5));
        assert!(c.online());
        c.observe(t0 + hours(6), hours(6));
        assert_eq!(c.offline(), hours(1));
        // Online time is not offline time for the budget.
        assert_eq!(c.month(), (Some((2026, 11)), hours(5)));
        // The link fails: the lane has been offline since the last success.
        c.failure(t0 + hours(6), hours(6));
        c.observe(t0 + hours(7), hours(7));
        assert_eq!(c.month(), (Some((2026, 11)), hours(7)));
    }

    #[test]
    fn a_stopped_daemon_counts_its_downtime_as_offline() {
        // Stopped while online (offline 0 at the checkpoint), off for 25 h.
        let cp = Checkpoint {
            offline: Duration::ZERO,
            at: Some(ts("2026-11-22T10:00:00Z")),
            online: true,
            ..Default::default()
        };
        let c = OfflineClock::resume(&cp, utc(), ts("2026-11-23T11:00:00Z"), Duration::ZERO);
        assert_eq!(c.offline(), hours(25));
        assert_eq!(
            verdict(&Limits::default(), c.inputs(None)).state,
            LaneState::Suspended
        );
        assert_eq!(c.lane_time(), ts("2026-11-23T11:00:00Z"));
        // Restarted mid-offline: the accumulated time is kept.
        let cp = Checkpoint {
            offline: hours(10),
            at: Some(ts("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        let c = OfflineClock::resume(&cp, utc(), ts("2026-11-22T10:00:30Z"), Duration::ZERO);
        assert_eq!(c.offline(), hours(10) + Duration::from_secs(30));
    }

    #[test]
    fn setting_the_clock_back_while_stopped_adds_nothing_takes_nothing_and_is_recorded() {
        let cp = Checkpoint {
            offline: hours(22),
            at: Some(ts("2026-11-22T10:00:00Z")),
            ..Default::default()
        };
        // 30 h back.
        let mut c = OfflineClock::resume(&cp, utc(), ts("2026-11-21T04:00:00Z"), Duration::ZERO);
        assert_eq!(c.offline(), hours(22), "accumulated time was reduced");
        let a = c.anomalies();
        assert_eq!(
            (a.count, a.last_at, a.last_back),
            (1, Some(ts("2026-11-21T04:00:00Z")), Some(hours(30)))
        );
        // Two more hours of running take it past the ceiling, whatever the
        // wall clock says.
        c.observe(ts("2026-11-21T06:00:00Z"), hours(2));
        assert_eq!(
            verdict(&Limits::default(), c.inputs(None)).state,
            LaneState::Suspended
        );
        // The anomaly survives the next checkpoint.
        assert_eq!(c.checkpoint().anomalies.count, 1);
    }

    #[test]
    fn setting_the_clock_back_while_running_is_recorded_and_changes_nothing() {
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO);
        c.observe(t0 + hours(1), hours(1));
        // One minute later, the clock reads 30 h earlier.
        let back = t0 + hours(1) + Duration::from_secs(60) - hours(30);
        c.observe(back, hours(1) + Duration::from_secs(60));
        assert_eq!(c.offline(), hours(1) + Duration::from_secs(60));
        assert_eq!(c.anomalies().count, 1);
        assert_eq!(c.anomalies().last_back, Some(hours(30)));
        // Lane time did not go back; small NTP steps are not anomalies.
        assert_eq!(c.lane_time(), t0 + hours(1) + Duration::from_secs(60));
        c.observe(
            back + Duration::from_secs(55),
            hours(1) + Duration::from_secs(120),
        );
        assert_eq!(c.anomalies().count, 1);
        // A checkpoint now and a restart an hour later (by the set-back
        // clock) count that hour.
        let cp = c.checkpoint();
        let c = OfflineClock::resume(
            &cp,
            utc(),
            back + Duration::from_secs(55) + hours(1),
            Duration::ZERO,
        );
        assert_eq!(c.offline(), hours(2) + Duration::from_secs(120));
    }

    #[test]
    fn a_clock_set_forward_or_a_till_that_slept_counts_the_gap() {
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO);
        // Monotonic time moved a minute, the wall clock ten hours.
        c.observe(t0 + hours(10), Duration::from_secs(60));
        assert_eq!(c.offline(), hours(10));
        assert_eq!(c.anomalies().count, 0);
    }

    #[test]
    fn the_monthly_budget_splits_offline_time_at_local_midnight_of_the_first() {
        // Kyiv in winter is UTC+2: December begins at 2026-11-30T22:00Z.
        let kyiv = TimeZone::fixed(jiff::tz::offset(2));
        let t0 = ts("2026-11-30T20:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), kyiv.clone(), t0, Duration::ZERO);
        c.observe(t0 + hours(1), hours(1));
        assert_eq!(c.month(), (Some((2026, 11)), hours(1)));
        let cp = c.checkpoint();
        c.observe(t0 + hours(4), hours(4));
        // Four hours offline in a row, two of them in December.
        assert_eq!(c.offline(), hours(4));
        assert_eq!(c.month(), (Some((2026, 12)), hours(2)));
        // Across a stop that spans the new month too: stopped at 21:00Z,
        // started at 01:00Z, three of those hours are December's.
        let c = OfflineClock::resume(&cp, kyiv, t0 + hours(5), Duration::ZERO);
        assert_eq!(c.offline(), hours(5));
        assert_eq!(c.month(), (Some((2026, 12)), hours(3)));
    }
}
