//! `GET /v1/status`: the lane at a glance, for tills, staff and support.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;

use super::AppState;
use crate::common::http::HttpError;
use crate::lane::ceiling::{Anomalies, LaneState, Rule};
use crate::lane::guard::BackendClock;
use crate::lane::guard::Snapshot;

#[derive(Serialize)]
struct Status {
    lane_id: String,
    series: String,
    version: &'static str,
    /// The git commit of this build.
    commit: &'static str,
    uptime_seconds: u64,
    lane_state: LaneState,
    counts: BTreeMap<&'static str, i64>,
    oldest_pending: Option<OldestPending>,
    pending_amount: BTreeMap<String, i64>,
    last_receipt_no: BTreeMap<String, i64>,
    /// The sync ceiling: how long offline, how close to a limit.
    ceiling: Ceiling,
    /// Raised when the back-end holds higher receipt numbers than this lane
    /// (restored from an old copy): new sales wait for an operator.
    restored_from_old_copy: Option<crate::lane::store::RestoreGuard>,
    /// Delivery to the back-end; null when none is configured.
    backend: Option<Backend>,
}

#[derive(Serialize)]
struct Ceiling {
    /// Limits apply (false without a back-end).
    enforced: bool,
    /// Time since the last successful exchange, downtime included.
    offline_seconds: u64,
    /// The limit the lane is closest to, and the time left before it.
    nearest_rule: Option<Rule>,
    remaining_seconds: Option<u64>,
    limits: Limits,
    /// Offline time booked to the current calendar month.
    month: Option<String>,
    month_offline_seconds: u64,
    oldest_unsent_age_seconds: Option<u64>,
    clock_anomalies: Anomalies,
    /// The lane restarted after a reboot with its wall clock behind the
    /// last checkpoint: how long it was off is unknown, and it is
    /// suspended until the next successful exchange.
    downtime_unknown: bool,
    /// The back-end's clock, from the `Date` of its last answer.
    backend_clock: Option<BackendClock>,
}

#[derive(Serialize)]
struct Limits {
    sync_ceiling_seconds: Option<u64>,
    warn_after_seconds: u64,
    max_unsent_age_seconds: Option<u64>,
    monthly_offline_budget_seconds: Option<u64>,
    time_zone: String,
}

fn ceiling(s: Snapshot) -> Ceiling {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs());
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
            time_zone: s.time_zone,
        },
        month: s.month.0.map(|(y, m)| format!("{y:04}-{m:02}")),
        month_offline_seconds: s.month.1.as_secs(),
        oldest_unsent_age_seconds: secs(s.oldest_unsent_age),
        clock_anomalies: s.anomalies,
        downtime_unknown: s.downtime_unknown,
        backend_clock: s.backend_clock,
    }
}

#[derive(Serialize)]
struct Backend {
    url: String,
    last_success_at: Option<String>,
    last_attempt_at: Option<String>,
    last_error: Option<Problem>,
    consecutive_failures: i64,
    /// A lane-level fault: delivery is paused until it is fixed.
    fault: Option<Problem>,
    next_attempt_at: Option<String>,
}

#[derive(Serialize)]
struct Problem {
    code: String,
    message: String,
}

fn problem(code: Option<String>, message: Option<String>) -> Option<Problem> {
    code.map(|code| Problem {
        code,
        message: message.unwrap_or_default(),
    })
}

#[derive(Serialize)]
struct OldestPending {
    recorded_at: String,
    age_seconds: i64,
}

pub(super) async fn status(State(s): State<AppState>) -> Result<Json<impl Serialize>, HttpError> {
    let c = s.store().status_counts().await?;
    let now = s.inner.clock.wall();
    let oldest_pending = c.oldest_pending_recorded_at.map(|at| {
        let age = at
            .parse::<jiff::Timestamp>()
            .map(|t| now.duration_since(t).as_secs().max(0))
            .unwrap_or(0);
        OldestPending {
            recorded_at: at,
            age_seconds: age,
        }
    });
    let backend = match &s.inner.drain {
        Some(d) => {
            let st = s.store().drain_state().await?;
            Some(Backend {
                url: d.backend_url().to_owned(),
                last_success_at: st.last_success_at,
                last_attempt_at: st.last_attempt_at,
                last_error: problem(st.last_error_code, st.last_error),
                consecutive_failures: st.consecutive_failures,
                fault: problem(st.fault_code, st.fault_message),
                next_attempt_at: st.next_attempt_at,
            })
        }
        None => None,
    };
    let id = s.store().identity();
    let snap = s.ceiling().snapshot();
    Ok(Json(Status {
        lane_id: id.lane_id.clone(),
        series: id.series.clone(),
        version: env!("CARGO_PKG_VERSION"),
        commit: crate::GIT_COMMIT,
        uptime_seconds: s
            .inner
            .clock
            .monotonic()
            .saturating_sub(s.inner.started)
            .as_secs(),
        lane_state: snap.state,
        counts: c.by_state,
        oldest_pending,
        pending_amount: c.pending_amount,
        last_receipt_no: c.last_receipt_no,
        ceiling: ceiling(snap),
        restored_from_old_copy: s.restore_guard(),
        backend,
    }))
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text format.
pub(super) async fn metrics(State(s): State<AppState>) -> Result<Response, HttpError> {
    let c = s.store().status_counts().await?;
    let now = s.inner.clock.wall();
    let oldest_pending_age = c
        .oldest_pending_recorded_at
        .and_then(|at| at.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| now.duration_since(t).as_secs().max(0));
    let snap = s.ceiling().snapshot();
    let g = crate::lane::metrics::Gauges {
        by_state: c
            .by_state
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        oldest_pending_age,
        offline_seconds: i64::try_from(snap.offline.as_secs()).unwrap_or(i64::MAX),
        lane_state: Some(snap.state),
    };
    let body = s.inner.metrics.render(&g);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
