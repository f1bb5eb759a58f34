//! `GET /v1/status`: the lane at a glance, for tills, staff and support.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::BTreeMap;

use super::{ApiError, AppState};
use crate::ceiling::LaneState;

#[derive(Serialize)]
struct Status {
    lane_id: String,
    series: String,
    version: &'static str,
    uptime_seconds: u64,
    lane_state: LaneState,
    counts: BTreeMap<&'static str, i64>,
    oldest_pending: Option<OldestPending>,
    pending_amount: BTreeMap<String, i64>,
    last_receipt_no: BTreeMap<String, i64>,
    /// Delivery to the back-end; null when none is configured.
    backend: Option<Backend>,
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

pub(super) async fn status(State(s): State<AppState>) -> Result<Json<impl Serialize>, ApiError> {
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
    Ok(Json(Status {
        lane_id: id.lane_id.clone(),
        series: id.series.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: s
            .inner
            .clock
            .monotonic()
            .saturating_sub(s.inner.started)
            .as_secs(),
        lane_state: s.lane_state(),
        counts: c.by_state,
        oldest_pending,
        pending_amount: c.pending_amount,
        last_receipt_no: c.last_receipt_no,
        backend,
    }))
}
