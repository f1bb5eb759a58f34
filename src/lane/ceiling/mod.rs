//! Lane state as the till sees it, and the sync ceiling (docs/sync-ceiling.md): the
//! offline clock that winding the wall clock back cannot fool, and the rules
//! that turn offline time into online, offline, warning or suspended.
//!
//! This module is pure: time comes in as arguments. [`crate::lane::guard`]
//! holds the live state, checkpoints it and logs state changes.

mod preset;
pub use preset::Preset;

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::common::clock::BootTime;

/// An online lane stays online through failed exchanges until they have
/// gone on this long without a success: a blip on a link that works (a
/// failed request, retried and delivered a second later) is not an outage,
/// and the lane's state and log do not flap with it. Offline time is still
/// counted from the last success.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(60);

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

/// The limits a lane enforces (docs/sync-ceiling.md). `None` switches a rule off.
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
    /// The till was off for a time nobody can know (restarted, with its
    /// wall clock behind the last checkpoint): counted as past every limit
    /// until the back-end is reached.
    DowntimeUnknown,
}

impl Rule {
    /// The rule's config key.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::SyncCeiling => "sync_ceiling",
            Rule::MaxUnsentAge => "max_unsent_age",
            Rule::MonthlyOfflineBudget => "monthly_offline_budget",
            Rule::DowntimeUnknown => "downtime_unknown",
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
    /// Part of the offline time cannot be known (see
    /// [`Rule::DowntimeUnknown`]).
    pub downtime_unknown: bool,
    /// An online lane whose exchanges are failing goes offline in this long
    /// (see [`OFFLINE_AFTER`]).
    pub offline_in: Option<Duration>,
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
/// whatever the last exchange did. An unknown downtime is past every limit
/// on offline time: the strict side.
pub fn verdict(limits: &Limits, i: Inputs) -> Verdict {
    if i.downtime_unknown
        && (limits.sync_ceiling.is_some() || limits.monthly_offline_budget.is_some())
    {
        return Verdict {
            state: LaneState::Suspended,
            nearest: Some((Rule::DowntimeUnknown, Duration::ZERO)),
        };
    }
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
        i.offline_in.filter(|d| !d.is_zero()),
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
    /// The boot clock at the checkpoint (a lower bound of it), where the
    /// platform has one.
    pub boot: Option<BootTime>,
    /// Part of the offline time is unknown (see [`Rule::DowntimeUnknown`]).
    pub downtime_unknown: bool,
}

/// Offline time, accumulated rather than read off the wall clock: while the
/// daemon runs it grows with monotonic time; across a stop (clean, `kill
/// -9` or a power cut) it grows by the downtime since the last checkpoint,
/// because a till that is switched off is offline. Within one boot the
/// downtime is measured with the boot clock, which nobody can set; across
/// a reboot only the wall clock has kept time, and a wall clock found
/// behind the last checkpoint leaves the downtime unknown, which counts as
/// past every limit until the back-end is reached. A wall clock ahead adds
/// its lead: moving the clock can only make the lane stricter. A wall clock
/// set back is recorded as an anomaly. Only a successful exchange resets
/// the offline time.
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
    /// The boot clock when the clock was resumed, and the monotonic time
    /// then: the boot clock at a later look is at least that plus the
    /// monotonic time since (it also runs while the machine sleeps).
    boot: Option<(BootTime, Duration)>,
    /// Part of the offline time is unknown, until the next success.
    downtime_unknown: bool,
    /// Monotonic time of the first failed exchange since the last success,
    /// while the lane is still online (see [`OFFLINE_AFTER`]).
    failing_since: Option<Duration>,
}

/// How long the daemon was down, as far as it can be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Downtime {
    /// This long at least.
    Known(Duration),
    /// Across a reboot, with the wall clock behind the checkpoint by this
    /// much: nobody can tell.
    Unknown(Duration),
}

/// The downtime between checkpoint `cp` and a start at `wall` / `boot`,
/// and how far the wall clock was set back meanwhile, if it was.
fn downtime(
    cp: &Checkpoint,
    wall: Timestamp,
    boot: Option<&BootTime>,
) -> (Downtime, Option<Duration>) {
    let Some(at) = cp.at else {
        // Never checkpointed: a new lane.
        return (Downtime::Known(Duration::ZERO), None);
    };
    let by_wall = span(at, wall);
    // Same boot: the boot clock measured the downtime exactly.
    let by_boot = match (&cp.boot, boot) {
        (Some(then), Some(now)) if then.boot_id == now.boot_id => {
            now.since_boot.checked_sub(then.since_boot)
        }
        _ => None,
    };
    match (by_boot, by_wall) {
        // A wall clock further ahead than the boot clock says was moved
        // forward: its lead counts too.
        (Some(b), Ok(w)) => (Downtime::Known(b.max(w)), None),
        (Some(b), Err(back)) => (Downtime::Known(b), Some(back + b)),
        (None, Ok(w)) => (Downtime::Known(w), None),
        (None, Err(back)) => (Downtime::Unknown(back), Some(back)),
    }
}

fn span(from: Timestamp, to: Timestamp) -> Result<Duration, Duration> {
    let d = to.duration_since(from);
    Duration::try_from(d).map_err(|_| Duration::try_from(-d).unwrap_or_default())
}

impl OfflineClock {
    /// Resumes from the last checkpoint at start-up. The lane starts
    /// offline: it has not talked to the back-end yet.
    pub fn resume(
        cp: &Checkpoint,
        tz: TimeZone,
        wall: Timestamp,
        mono: Duration,
        boot: Option<BootTime>,
    ) -> OfflineClock {
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
            downtime_unknown: cp.downtime_unknown,
            boot: None,
            failing_since: None,
        };
        let (down, set_back) = downtime(cp, wall, boot.as_ref());
        match down {
            // The daemon was down this long: that time was offline.
            Downtime::Known(down) => {
                c.offline += down;
                c.lane_time += down;
            }
            Downtime::Unknown(_) => c.downtime_unknown = true,
        }
        if let Some(back) = set_back {
            c.anomaly(wall, back);
        }
        c.boot = boot.map(|b| (b, mono));
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
        if self
            .failing_since
            .is_some_and(|f| mono.saturating_sub(f) >= OFFLINE_AFTER)
        {
            // Failing for long enough: the lane is offline, and has been
            // since its last success.
            self.online = false;
            self.failing_since = None;
        }
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
        self.failing_since = None;
        self.downtime_unknown = false;
        self.offline = Duration::ZERO;
        self.booked = Duration::ZERO;
        self.online = true;
    }

    /// A failed exchange. A lane that was online stays online until its
    /// exchanges have failed for [`OFFLINE_AFTER`] without a success; then
    /// it is offline, and has been since its last success.
    pub fn failure(&mut self, wall: Timestamp, mono: Duration) {
        self.observe(wall, mono);
        if self.online && self.failing_since.is_none() {
            self.failing_since = Some(mono);
        }
    }

    /// The inputs of [`verdict`], as of the last observation.
    pub fn inputs(&self, oldest_unsent_at: Option<Timestamp>) -> Inputs {
        Inputs {
            offline: self.offline,
            online: self.online,
            oldest_unsent: oldest_unsent_at.map(|t| span(t, self.lane_time).unwrap_or_default()),
            month_used: self.month_used_now(),
            downtime_unknown: self.downtime_unknown,
            offline_in: self
                .failing_since
                .map(|f| OFFLINE_AFTER.saturating_sub(self.last_mono.saturating_sub(f))),
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
            boot: self.boot.as_ref().map(|(b, mono)| BootTime {
                boot_id: b.boot_id.clone(),
                since_boot: b.since_boot + self.last_mono.saturating_sub(*mono),
            }),
            downtime_unknown: self.downtime_unknown,
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

    /// Part of the offline time is unknown (restarted after a reboot with
    /// the wall clock behind the last checkpoint), until the next success.
    pub fn downtime_unknown(&self) -> bool {
        self.downtime_unknown
    }

    /// The month of the budget figure, and the figure.
    pub fn month(&self) -> (Option<Month>, Duration) {
        (self.month, self.month_used_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO, None);
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
        let c = OfflineClock::resume(&cp, utc(), ts("2026-11-23T11:00:00Z"), Duration::ZERO, None);
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
        let c = OfflineClock::resume(&cp, utc(), ts("2026-11-22T10:00:30Z"), Duration::ZERO, None);
        assert_eq!(c.offline(), hours(10) + Duration::from_secs(30));
    }

    fn boot(id: &str, since_boot: Duration) -> Option<BootTime> {
        Some(BootTime {
            boot_id: id.into(),
            since_boot,
        })
    }

    #[test]
    fn within_one_boot_the_boot_clock_measures_the_downtime_whatever_the_wall_clock_says() {
        // Checkpointed 5 h into the boot, 22 h offline; killed; started
        // again 3 h later by the boot clock with the wall clock 27 h behind
        // the checkpoint (set back 30 h).
        let cp = Checkpoint {
            offline: hours(22),
            at: Some(ts("2026-11-22T10:00:00Z")),
            boot: boot("b1", hours(5)),
            ..Default::default()
        };
        let now = ts("2026-11-21T07:00:00Z");
        let c = OfflineClock::resume(&cp, utc(), now, Duration::ZERO, boot("b1", hours(8)));
        assert_eq!(c.offline(), hours(25), "the downtime was not counted");
        assert!(!c.downtime_unknown());
        assert_eq!(
            verdict(&Limits::default(), c.inputs(None)).state,
            LaneState::Suspended
        );
        // The set-back is recorded: 30 h, the 3 h of downtime included.
        let a = c.anomalies();
        assert_eq!(
            (a.count, a.last_at, a.last_back),
            (1, Some(now), Some(hours(30)))
        );
        // A wall clock moved forward while stopped counts its lead.
        let ahead = ts("2026-11-22T20:00:00Z");
        let c = OfflineClock::resume(&cp, utc(), ahead, Duration::ZERO, boot("b1", hours(8)));
        assert_eq!(c.offline(), hours(32));
        assert_eq!(c.anomalies().count, 0);
    }

    #[test]
    fn a_reboot_with_the_clock_behind_the_checkpoint_leaves_the_downtime_unknown_and_suspends() {
        let cp = Checkpoint {
            offline: hours(2),
            at: Some(ts("2026-11-22T10:00:00Z")),
            boot: boot("b1", hours(5)),
            ..Default::default()
        };
        // Another boot (or no boot clock at all), the clock 30 h back.
        let back = ts("2026-11-21T04:00:00Z");
        for b in [boot("b2", Duration::from_secs(40)), None] {
            let mut c = OfflineClock::resume(&cp, utc(), back, Duration::ZERO, b);
            assert!(c.downtime_unknown());
            assert_eq!(c.offline(), hours(2), "the accumulated time is kept");
            assert_eq!(c.anomalies().count, 1);
            let v = verdict(&Limits::default(), c.inputs(None));
            assert_eq!(v.state, LaneState::Suspended);
            assert_eq!(v.nearest, Some((Rule::DowntimeUnknown, Duration::ZERO)));
            // It survives a checkpoint and another restart, however the
            // clock is set then.
            let cp2 = c.checkpoint();
            assert!(cp2.downtime_unknown);
            let c2 = OfflineClock::resume(&cp2, utc(), back + hours(1), Duration::ZERO, None);
            assert!(c2.downtime_unknown());
            // Only a successful exchange clears it.
            c.success(back, Duration::from_secs(1));
            assert!(!c.downtime_unknown());
            assert_eq!(
                verdict(&Limits::default(), c.inputs(None)).state,
                LaneState::Online
            );
        }
        // Without any limit on offline time there is nothing to suspend.
        let none = Limits {
            sync_ceiling: None,
            ..Limits::default()
        };
        let c = OfflineClock::resume(&cp, utc(), back, Duration::ZERO, None);
        assert_ne!(verdict(&none, c.inputs(None)).state, LaneState::Suspended);
        // A reboot with the clock ahead of the checkpoint counts the wall
        // time since it: the only clock that ran while the till was off.
        let c = OfflineClock::resume(
            &cp,
            utc(),
            ts("2026-11-22T13:00:00Z"),
            Duration::ZERO,
            boot("b2", Duration::from_secs(40)),
        );
        assert_eq!((c.offline(), c.downtime_unknown()), (hours(5), false));
    }

    /// One step of the model in
    /// [`no_mix_of_stops_reboots_and_clock_moves_shortens_the_offline_time`].
    #[derive(Debug, Clone)]
    enum Step {
        /// The daemon runs this many seconds; the wall clock is moved by
        /// `jump` seconds meanwhile; it may checkpoint at the end.
        Run {
            secs: u32,
            jump: i32,
            checkpoint: bool,
        },
        /// An exchange with the back-end succeeds (checkpointed or not).
        Success { checkpoint: bool },
        /// The daemon stops: 0 clean (a last checkpoint), 1 `kill -9`,
        /// 2 power cut (a new boot); it stays down `secs`, while the wall
        /// clock is moved by `moved` seconds; the new daemon may or may not
        /// get to write its first checkpoint.
        Stop {
            how: u8,
            secs: u32,
            moved: i32,
            checkpoint: bool,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        let moved = || prop_oneof![3 => Just(0i32), 2 => -300_000i32..300_000];
        prop_oneof![
            4 => (0u32..7200, moved(), any::<bool>())
                .prop_map(|(secs, jump, checkpoint)| Step::Run { secs, jump, checkpoint }),
            1 => any::<bool>().prop_map(|checkpoint| Step::Success { checkpoint }),
            3 => (0u8..3, 0u32..200_000, moved(), any::<bool>()).prop_map(
                |(how, secs, moved, checkpoint)| Step::Stop { how, secs, moved, checkpoint }
            ),
        ]
    }

    /// The simulated till: real time, its wall clock's offset from real
    /// time, its boots; the daemon's clock and its last checkpoint on disk.
    struct Till {
        real: Duration,
        offset: i64,
        boot_no: u32,
        boot_began: Duration,
        c: OfflineClock,
        /// The true time since the last success.
        truth: Duration,
        /// How far the counted time may lag the truth: only a wall clock
        /// set back (net) between a checkpoint and a start after a reboot
        /// can take time away, since no clock that ran while the till was
        /// off says otherwise.
        deficit: Duration,
        /// Counted time equals the truth.
        exact: bool,
        saved: (Checkpoint, Duration, bool, u32),
        /// Net wall-clock moves since the checkpoint on disk.
        moves_since_saved: i64,
    }

    impl Till {
        fn wall(&self) -> Timestamp {
            ts("2026-11-22T10:00:00Z") + self.real + jiff::SignedDuration::from_secs(self.offset)
        }

        fn boot(&self) -> Option<BootTime> {
            boot(&format!("b{}", self.boot_no), self.real - self.boot_began)
        }

        fn save(&mut self) {
            self.saved = (self.c.checkpoint(), self.deficit, self.exact, self.boot_no);
            self.moves_since_saved = 0;
        }

        fn move_clock(&mut self, by: i32) {
            self.offset += i64::from(by);
            self.moves_since_saved += i64::from(by);
            self.exact &= by == 0;
        }

        fn apply(&mut self, s: &Step) {
            match *s {
                Step::Run {
                    secs,
                    jump,
                    checkpoint,
                } => {
                    let d = Duration::from_secs(secs.into());
                    self.real += d;
                    self.truth += d;
                    self.move_clock(jump);
                    self.c.observe(self.wall(), self.real);
                    if checkpoint {
                        self.save();
                    }
                }
                Step::Success { checkpoint } => {
                    self.c.success(self.wall(), self.real);
                    self.truth = Duration::ZERO;
                    self.deficit = Duration::ZERO;
                    self.exact = true;
                    if checkpoint {
                        self.save();
                    } else {
                        // The checkpoint on disk predates the success: a
                        // restart from it counts more than the truth.
                        self.saved.2 = false;
                    }
                }
                Step::Stop {
                    how,
                    secs,
                    moved,
                    checkpoint,
                } => {
                    self.c.observe(self.wall(), self.real);
                    if how == 0 {
                        self.save();
                    }
                    let d = Duration::from_secs(secs.into());
                    self.real += d;
                    self.truth += d;
                    self.move_clock(moved);
                    if how == 2 {
                        self.boot_no += 1;
                        self.boot_began = self.real;
                    }
                    let (cp, deficit, exact, boot_no) = self.saved.clone();
                    self.c = OfflineClock::resume(&cp, utc(), self.wall(), self.real, self.boot());
                    let unwitnessed = if boot_no == self.boot_no {
                        0
                    } else {
                        u64::try_from(-self.moves_since_saved).unwrap_or(0)
                    };
                    self.deficit = deficit + Duration::from_secs(unwitnessed);
                    self.exact = exact && self.moves_since_saved == 0;
                    if checkpoint {
                        self.save();
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(crate::common::testing::proptest_config(Some(2000)))]
        /// A lane whose back-end is mostly down goes through random runs,
        /// clean stops, `kill -9`s (resuming from a checkpoint that may be
        /// stale), power cuts and wall-clock moves either way, running or
        /// stopped. At every point the offline time it counts is at least
        /// the true time since its last success, or it knows that it cannot
        /// know (and is suspended). The one exception is the one no clock
        /// can witness: a wall clock set back while the till was switched
        /// off, by less than the time since the checkpoint; the lag is then
        /// at most the net amount set back. With no clock moved at all, it
        /// counts the truth exactly.
        #[test]
        fn no_mix_of_stops_reboots_and_clock_moves_shortens_the_offline_time(
            steps in proptest::collection::vec(step(), 1..40)
        ) {
            let start = ts("2026-11-22T10:00:00Z");
            let c = OfflineClock::resume(
                &Checkpoint::default(), utc(), start, Duration::ZERO, boot("b1", Duration::ZERO),
            );
            let mut t = Till {
                real: Duration::ZERO, offset: 0, boot_no: 1, boot_began: Duration::ZERO,
                saved: (c.checkpoint(), Duration::ZERO, true, 1), c,
                truth: Duration::ZERO, deficit: Duration::ZERO, exact: true,
                moves_since_saved: 0,
            };
            for (i, s) in steps.iter().enumerate() {
                t.apply(s);
                let (c, truth) = (&t.c, t.truth);
                let v = verdict(&Limits::default(), c.inputs(None));
                prop_assert!(
                    c.downtime_unknown() || c.offline() + t.deficit >= truth,
                    "step {i} ({s:?}): counted {:?} (allowed lag {:?}), truly offline {truth:?}",
                    c.offline(), t.deficit
                );
                prop_assert!(
                    !c.downtime_unknown() || v.state == LaneState::Suspended,
                    "step {i}: unknown downtime but {v:?}"
                );
                if t.exact {
                    prop_assert!(
                        !c.downtime_unknown() && c.offline() == truth,
                        "step {i} ({s:?}): no clock moved, yet counted {:?} of {truth:?}",
                        c.offline()
                    );
                }
            }
        }
    }

    #[test]
    fn setting_the_clock_back_while_running_is_recorded_and_changes_nothing() {
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO, None);
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
            None,
        );
        assert_eq!(c.offline(), hours(2) + Duration::from_secs(120));
    }

    #[test]
    fn a_clock_set_forward_or_a_till_that_slept_counts_the_gap() {
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = OfflineClock::resume(&Checkpoint::default(), utc(), t0, Duration::ZERO, None);
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
        let mut c = OfflineClock::resume(
            &Checkpoint::default(),
            kyiv.clone(),
            t0,
            Duration::ZERO,
            None,
        );
        c.observe(t0 + hours(1), hours(1));
        assert_eq!(c.month(), (Some((2026, 11)), hours(1)));
        let cp = c.checkpoint();
        c.observe(t0 + hours(4), hours(4));
        // Four hours offline in a row, two of them in December.
        assert_eq!(c.offline(), hours(4));
        assert_eq!(c.month(), (Some((2026, 12)), hours(2)));
        // Across a stop that spans the new month too: stopped at 21:00Z,
        // started at 01:00Z, three of those hours are December's.
        let c = OfflineClock::resume(&cp, kyiv, t0 + hours(5), Duration::ZERO, None);
        assert_eq!(c.offline(), hours(5));
        assert_eq!(c.month(), (Some((2026, 12)), hours(3)));
    }
}
