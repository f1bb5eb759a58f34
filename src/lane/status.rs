//! The lane at a glance: one report for every reader. `GET /v1/status`
//! serves it as JSON, the status page and `/metrics` take their figures
//! from it, and `laned status` builds it from the database alone (the
//! daemon running or not) and prints it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::common::time::fmt_ts;
use crate::lane::ceiling::{Anomalies, LaneState, Rule};
use crate::lane::guard::{BackendClock, Snapshot};
use crate::lane::store::{DrainState, RestoreGuard, StatusCounts};

/// What a report is made of, read by the daemon (live) or from the
/// database.
pub struct Facts {
    /// This lane's id.
    pub lane_id: String,
    /// Its receipt number series.
    pub series: String,
    /// Sales per state, the backlog and the last receipt numbers.
    pub counts: StatusCounts,
    /// The back-end's URL, when one is configured (and known to the reader).
    pub backend_url: Option<String>,
    /// The drain's state; `None` when no back-end is configured.
    pub drain: Option<DrainState>,
    /// The restored-lane guard, when raised.
    pub restore: Option<RestoreGuard>,
    /// The sync ceiling as of now.
    pub snapshot: Snapshot,
    /// The wall clock now.
    pub now: Timestamp,
    /// How long the daemon has run; `None` when read from the database.
    pub uptime: Option<Duration>,
}

/// The lane at a glance (the JSON of `GET /v1/status`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// This lane's id.
    pub lane_id: String,
    /// Its receipt number series.
    pub series: String,
    /// This build's version.
    pub version: &'static str,
    /// The git commit of this build.
    pub commit: &'static str,
    /// How long the daemon has run (absent when read from the database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// online, warning, offline or suspended.
    pub lane_state: LaneState,
    /// Sales per state, every state present.
    pub counts: BTreeMap<&'static str, i64>,
    /// The oldest sale waiting for delivery.
    pub oldest_pending: Option<OldestPending>,
    /// Net amount waiting for delivery, per currency, in minor units.
    pub pending_amount: BTreeMap<String, i64>,
    /// The last receipt number issued, per series.
    pub last_receipt_no: BTreeMap<String, i64>,
    /// The sync ceiling: how long offline, how close to a limit.
    pub ceiling: Ceiling,
    /// Raised when the back-end holds higher receipt numbers than this lane
    /// (restored from an old copy): new sales wait for an operator.
    pub restored_from_old_copy: Option<RestoreGuard>,
    /// Delivery to the back-end; null when none is configured.
    pub backend: Option<Backend>,
    /// The ceiling this report was made from (for the page's sentences).
    #[serde(skip)]
    pub snapshot: Snapshot,
}

/// The oldest sale waiting for delivery.
#[derive(Debug, Serialize)]
pub struct OldestPending {
    /// When it was recorded (UTC text).
    pub recorded_at: String,
    /// Its age by the lane's wall clock, never negative.
    pub age_seconds: i64,
}

/// The sync ceiling's part of the report.
#[derive(Debug, Serialize)]
pub struct Ceiling {
    /// Limits apply (false without a back-end).
    pub enforced: bool,
    /// Time since the last successful exchange, downtime included.
    pub offline_seconds: u64,
    /// The limit the lane is closest to.
    pub nearest_rule: Option<Rule>,
    /// The time left before it.
    pub remaining_seconds: Option<u64>,
    /// The limits in force.
    pub limits: Limits,
    /// The calendar month the budget counts (`YYYY-MM`).
    pub month: Option<String>,
    /// Offline time booked to that month.
    pub month_offline_seconds: u64,
    /// Age of the oldest pending or stuck sale, by lane time.
    pub oldest_unsent_age_seconds: Option<u64>,
    /// Clock anomalies seen.
    pub clock_anomalies: Anomalies,
    /// The lane restarted after a reboot with its wall clock behind the
    /// last checkpoint: how long it was off is unknown, and it is
    /// suspended until the next successful exchange.
    pub downtime_unknown: bool,
    /// The back-end's clock, from the `Date` of its last answer.
    pub backend_clock: Option<BackendClock>,
}

/// The limits in force, in seconds.
#[derive(Debug, Serialize)]
pub struct Limits {
    /// Offline this long in a row: sales are refused.
    pub sync_ceiling_seconds: Option<u64>,
    /// Offline this long: the lane warns.
    pub warn_after_seconds: u64,
    /// The oldest unsent sale older than this: sales are refused.
    pub max_unsent_age_seconds: Option<u64>,
    /// Offline time allowed per calendar month.
    pub monthly_offline_budget_seconds: Option<u64>,
    /// The time zone of the calendar months.
    pub time_zone: String,
}

/// Delivery to the back-end.
#[derive(Debug, Serialize)]
pub struct Backend {
    /// The back-end's base URL (absent when the reader does not know it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Last successful exchange.
    pub last_success_at: Option<String>,
    /// Last attempt of any kind.
    pub last_attempt_at: Option<String>,
    /// The last failure.
    pub last_error: Option<Problem>,
    /// Failures since the last success.
    pub consecutive_failures: i64,
    /// A lane-level fault: delivery is paused until it is fixed.
    pub fault: Option<Problem>,
    /// When the drain may next try.
    pub next_attempt_at: Option<String>,
}

/// A code and its sentence.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Stable code.
    pub code: String,
    /// Plain sentence.
    pub message: String,
}

fn problem(code: Option<String>, message: Option<String>) -> Option<Problem> {
    code.map(|code| Problem {
        code,
        message: message.unwrap_or_default(),
    })
}

impl Report {
    /// The report of these facts.
    pub fn new(f: Facts) -> Report {
        let oldest_pending = f.counts.oldest_pending_recorded_at.map(|at| {
            let age_seconds = at
                .parse::<Timestamp>()
                .map_or(0, |t| f.now.duration_since(t).as_secs().max(0));
            OldestPending {
                recorded_at: at,
                age_seconds,
            }
        });
        let backend = f.drain.map(|d| Backend {
            url: f.backend_url,
            last_success_at: d.last_success_at.map(fmt_ts),
            last_attempt_at: d.last_attempt_at.map(fmt_ts),
            last_error: problem(d.last_error_code, d.last_error),
            consecutive_failures: d.consecutive_failures,
            fault: problem(d.fault_code, d.fault_message),
            next_attempt_at: d.next_attempt_at.map(fmt_ts),
        });
        Report {
            lane_id: f.lane_id,
            series: f.series,
            version: env!("CARGO_PKG_VERSION"),
            commit: crate::GIT_COMMIT,
            uptime_seconds: f.uptime.map(|u| u.as_secs()),
            lane_state: f.snapshot.state,
            counts: f.counts.by_state,
            oldest_pending,
            pending_amount: f.counts.pending_amount,
            last_receipt_no: f.counts.last_receipt_no,
            ceiling: ceiling(&f.snapshot),
            restored_from_old_copy: f.restore,
            backend,
            snapshot: f.snapshot,
        }
    }

    /// Sales in `state` (zero when none).
    pub fn count(&self, state: &str) -> i64 {
        self.counts.get(state).copied().unwrap_or(0)
    }
}

fn ceiling(s: &Snapshot) -> Ceiling {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
    let l = s.limits;
    Ceiling {
        enforced: s.enforced,
        offline_seconds: s.offline.as_secs(),
        nearest_rule: s.nearest.map(|n| n.0),
        remaining_seconds: s.nearest.map(|n| n.1.as_secs()),
        limits: Limits {
            sync_ceiling_seconds: secs(l.sync_ceiling),
            warn_after_seconds: l.warn_after.as_secs(),
            max_unsent_age_seconds: secs(l.max_unsent_age),
            monthly_offline_budget_seconds: secs(l.monthly_offline_budget),
            time_zone: s.time_zone.clone(),
        },
        month: s.month.0.map(|(y, m)| format!("{y:04}-{m:02}")),
        month_offline_seconds: s.month.1.as_secs(),
        oldest_unsent_age_seconds: secs(s.oldest_unsent_age),
        clock_anomalies: s.anomalies,
        downtime_unknown: s.downtime_unknown,
        backend_clock: s.backend_clock,
    }
}
