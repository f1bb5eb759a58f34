//! The lane at a glance: one report for every reader. `GET /v1/status`
//! serves it as JSON, the status page and `/metrics` take their figures
//! from it, and `laned status` builds it from the database alone (the
//! daemon running or not) and prints it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::common::time::fmt_ts;
use crate::lane::ceiling::{Anomalies, LaneState, Rule};
use crate::lane::guard::{BackendClock, Snapshot};
use crate::lane::messages::{Locale, Part, Phrase, Words};
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
    /// The automatic day closing's local time (`close_day_at`), if set.
    pub close_day_at: Option<jiff::civil::Time>,
    /// When the automatic closing runs next, as its task scheduled it;
    /// `None` when it does not run (not set, or the daemon is down).
    pub next_closing_at: Option<Timestamp>,
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
    /// The worst of `troubles`: `ok` when there are none.
    pub verdict: Verdict,
    /// What is wrong on the lane, worst first, each with what to do.
    pub troubles: Vec<Trouble>,
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
    /// Day closings: the last day closed and the automatic closing.
    pub closing: DayClosing,
    /// The ceiling this report was made from (for the page's sentences).
    #[serde(skip)]
    pub snapshot: Snapshot,
}

/// How bad the worst thing on the lane is. `laned status` and `laned
/// doctor` exit 6 on `attention` and 7 on `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing is wrong.
    Ok,
    /// Worth knowing; sales flow (offline for a short while).
    Info,
    /// Watch it; sales flow (offline for long, clock set back, no back-end).
    Warning,
    /// Someone must act; sales are still taken (stuck sales, delivery
    /// paused, the sync ceiling under an hour away).
    Attention,
    /// New sales are refused (suspended, restored from an old copy).
    Stopped,
}

impl Verdict {
    /// The name in the JSON and the page's colour class.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Info => "info",
            Verdict::Warning => "warning",
            Verdict::Attention => "attention",
            Verdict::Stopped => "stopped",
        }
    }
}

/// Something wrong on the lane: a stable code, how bad it is, and what it
/// means and what to do in words store staff understand. The JSON carries
/// the words in English; the page says them in the reader's language.
#[derive(Debug, Clone)]
pub struct Trouble {
    /// Stable code: `restored_from_old_copy`, `lane_suspended`,
    /// `lane_fault`, `stuck_sales`, `closing_stuck`, `ceiling_near`, `offline`,
    /// `no_backend` or `clock_set_back`.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Verdict,
    /// The headline.
    pub headline: Phrase,
    /// What it means and what to do.
    pub action: Phrase,
    /// The technical detail, for support (a back-end's code and message).
    pub detail: Option<String>,
}

impl Serialize for Trouble {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            code: &'a str,
            severity: Verdict,
            headline: String,
            action: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: Option<&'a str>,
        }
        let en = Words(Locale::En);
        Shown {
            code: self.code,
            severity: self.severity,
            headline: en.say(&self.headline),
            action: en.say(&self.action),
            detail: self.detail.as_deref(),
        }
        .serialize(s)
    }
}

/// A clock set back longer ago than this no longer shows as a trouble
/// (it stays counted in `ceiling.clock_anomalies`).
const CLOCK_ANOMALY_SHOWN: Duration = Duration::from_secs(24 * 3600);
/// The sync ceiling this close: someone must act now.
const CEILING_NEAR: Duration = Duration::from_secs(3600);

/// What is wrong, worst first.
fn troubles(
    snap: &Snapshot,
    restore: bool,
    backend: Option<&Backend>,
    stuck: i64,
    closings_stuck: i64,
    now: Timestamp,
) -> Vec<Trouble> {
    let mut out = vec![];
    let mut add = |code, severity, headline, action, detail| {
        out.push(Trouble {
            code,
            severity,
            headline,
            action,
            detail,
        })
    };
    if restore {
        add(
            "restored_from_old_copy",
            Verdict::Stopped,
            Phrase::new("banner-restored"),
            Phrase::new("banner-restored-do"),
            None,
        );
    }
    let rule = snap.nearest.map(|(r, _)| r);
    if snap.state == LaneState::Suspended {
        let (headline, action) = if snap.downtime_unknown {
            (
                Phrase::new("banner-downtime-unknown"),
                Phrase::new("banner-downtime-unknown-do"),
            )
        } else {
            let headline = match rule {
                Some(Rule::SyncCeiling) | None => Phrase::new("banner-suspended").arg(
                    "limit",
                    Part::Hours(snap.limits.sync_ceiling.unwrap_or(snap.offline)),
                ),
                _ => Phrase::new("banner-suspended-other"),
            };
            let action = Phrase::new("banner-suspended-do").arg(
                "reason",
                Part::Phrase(Box::new(crate::lane::guard::reason(snap))),
            );
            (headline, action)
        };
        add("lane_suspended", Verdict::Stopped, headline, action, None);
    }
    if let Some(f) = backend.and_then(|b| b.fault.as_ref()) {
        add(
            "lane_fault",
            Verdict::Attention,
            Phrase::new("banner-fault"),
            Phrase::new("banner-fault-do").arg("reason", Part::BackendCode(f.code.clone())),
            Some(format!("{}: {}", f.code, f.message)),
        );
    }
    if stuck > 0 {
        add(
            "stuck_sales",
            Verdict::Attention,
            Phrase::new("banner-stuck").arg("n", Part::Count(stuck)),
            Phrase::new("banner-stuck-do").arg("n", Part::Count(stuck)),
            None,
        );
    }
    // Sales go on, but head office lacks a day's closing: support looks.
    if closings_stuck > 0 {
        add(
            "closing_stuck",
            Verdict::Warning,
            Phrase::new("banner-closing-stuck").arg("n", Part::Count(closings_stuck)),
            Phrase::new("banner-closing-stuck-do"),
            None,
        );
    }
    // A limit under an hour away: the offline limits count down only while
    // the lane is offline; the age of the oldest unsent sale (a stuck sale)
    // counts online too.
    let near = snap
        .nearest
        .filter(|(_, left)| snap.enforced && *left < CEILING_NEAR)
        .filter(|(rule, _)| match snap.state {
            LaneState::Suspended => false,
            LaneState::Online => *rule == Rule::MaxUnsentAge,
            LaneState::Offline | LaneState::Warning => true,
        });
    if let Some((_, left)) = near {
        add(
            "ceiling_near",
            Verdict::Attention,
            Phrase::new("banner-ceiling-near").arg("remaining", Part::Hours(left)),
            Phrase::new("banner-ceiling-near-do").arg(
                "reason",
                Part::Phrase(Box::new(crate::lane::guard::reason(snap))),
            ),
            None,
        );
    } else if matches!(snap.state, LaneState::Offline | LaneState::Warning) && backend.is_some() {
        let headline = match snap.nearest {
            Some((_, left)) if snap.enforced => {
                Phrase::new("banner-offline-countdown").arg("remaining", Part::Hours(left))
            }
            _ => Phrase::new("banner-offline"),
        };
        let severity = if snap.state == LaneState::Warning {
            Verdict::Warning
        } else {
            Verdict::Info
        };
        add(
            "offline",
            severity,
            headline,
            Phrase::new("banner-offline-do").arg("offline", Part::Hours(snap.offline)),
            None,
        );
    }
    if backend.is_none() {
        add(
            "no_backend",
            Verdict::Warning,
            Phrase::new("banner-no-backend"),
            Phrase::new("banner-no-backend-do"),
            None,
        );
    }
    let recent = snap
        .anomalies
        .last_at
        .is_some_and(|t| now.duration_since(t).unsigned_abs() < CLOCK_ANOMALY_SHOWN);
    if recent {
        add(
            "clock_set_back",
            Verdict::Warning,
            Phrase::new("banner-clock"),
            Phrase::new("banner-clock-do"),
            None,
        );
    }
    // Worst first; among equals, in the order above.
    out.sort_by_key(|t| std::cmp::Reverse(t.severity));
    out
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
        let stuck = f.counts.by_state.get("stuck").copied().unwrap_or_default();
        let troubles = troubles(
            &f.snapshot,
            f.restore.is_some(),
            backend.as_ref(),
            stuck,
            f.counts.closings_stuck,
            f.now,
        );
        Report {
            verdict: troubles.first().map_or(Verdict::Ok, |t| t.severity),
            troubles,
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
            closing: DayClosing {
                closed_through: f.counts.closed_through,
                automatic_at: f.close_day_at.map(|t| t.strftime("%H:%M").to_string()),
                next_automatic_at: f.next_closing_at.map(fmt_ts),
            },
            snapshot: f.snapshot,
        }
    }

    /// Sales in `state` (zero when none).
    pub fn count(&self, state: &str) -> i64 {
        self.counts.get(state).copied().unwrap_or(0)
    }
}

/// Day closings (Z reports) in the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DayClosing {
    /// The last business day closed, per series (none closed yet: absent).
    pub closed_through: BTreeMap<String, String>,
    /// The local time the lane closes the days before by itself
    /// (`close_day_at`, `HH:MM` in the lane's time zone); null when off.
    pub automatic_at: Option<String>,
    /// When the automatic closing runs next, as the running daemon
    /// scheduled it; null when it is off or the daemon is not running.
    pub next_automatic_at: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::ceiling::Limits;

    fn snapshot(state: LaneState, offline_min: u64, nearest: Option<(Rule, u64)>) -> Snapshot {
        Snapshot {
            state,
            enforced: true,
            limits: Limits::default(),
            offline: Duration::from_secs(offline_min * 60),
            nearest: nearest.map(|(r, min)| (r, Duration::from_secs(min * 60))),
            month: (None, Duration::ZERO),
            time_zone: "UTC".into(),
            anomalies: Anomalies::default(),
            downtime_unknown: false,
            oldest_unsent_age: None,
            backend_clock: None,
        }
    }

    fn codes(snap: &Snapshot, stuck: i64) -> Vec<(&'static str, Verdict)> {
        let backend = Backend {
            url: None,
            last_success_at: None,
            last_attempt_at: None,
            last_error: None,
            consecutive_failures: 0,
            fault: None,
            next_attempt_at: None,
        };
        troubles(snap, false, Some(&backend), stuck, 0, Timestamp::UNIX_EPOCH)
            .iter()
            .map(|t| (t.code, t.severity))
            .collect()
    }

    #[test]
    fn a_limit_under_an_hour_away_needs_attention_only_while_it_counts() {
        use Rule::*;
        // Online with a short ceiling: the offline limits are not counting.
        assert_eq!(
            codes(&snapshot(LaneState::Online, 0, Some((SyncCeiling, 9))), 0),
            []
        );
        // Offline, 45 min left: attention, instead of the plain offline.
        assert_eq!(
            codes(&snapshot(LaneState::Offline, 5, Some((SyncCeiling, 45))), 0),
            [("ceiling_near", Verdict::Attention)]
        );
        assert_eq!(
            codes(&snapshot(LaneState::Warning, 5, Some((SyncCeiling, 61))), 0),
            [("offline", Verdict::Warning)]
        );
        // A stuck sale ageing towards max_unsent_age counts online too.
        assert_eq!(
            codes(&snapshot(LaneState::Online, 0, Some((MaxUnsentAge, 30))), 1),
            [
                ("stuck_sales", Verdict::Attention),
                ("ceiling_near", Verdict::Attention)
            ]
        );
        // Suspended says so, worst first.
        assert_eq!(
            codes(
                &snapshot(LaneState::Suspended, 1500, Some((SyncCeiling, 0))),
                2
            ),
            [
                ("lane_suspended", Verdict::Stopped),
                ("stuck_sales", Verdict::Attention)
            ]
        );
    }
}
