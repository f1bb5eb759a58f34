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
    }))
}
