//! `GET /v1/status` and `GET /metrics`: the lane's report
//! (`crate::lane::status`), as JSON and as Prometheus gauges.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::common::http::HttpError;
use crate::lane::status::{Facts, Report};

/// The lane's report as of now: what the status endpoint, the page and
/// the metrics all show.
pub(super) async fn report(s: &AppState) -> Result<Report, HttpError> {
    let counts = s.store().status_counts().await?;
    let drain = match &s.inner.drain {
        Some(_) => Some(s.store().drain_state().await?),
        None => None,
    };
    let id = s.store().identity();
    Ok(Report::new(Facts {
        lane_id: id.lane_id.clone(),
        series: id.series.clone(),
        counts,
        backend_url: s.inner.drain.as_ref().map(|d| d.backend_url().to_owned()),
        drain,
        restore: s.restore_guard(),
        snapshot: s.ceiling().snapshot(),
        now: s.inner.clock.wall(),
        uptime: Some(s.inner.clock.monotonic().saturating_sub(s.inner.started)),
        close_day_at: s.inner.closing.at,
        next_closing_at: *s.inner.closing.next.borrow(),
    }))
}

pub(super) async fn status(State(s): State<AppState>) -> Result<Json<Report>, HttpError> {
    Ok(Json(report(&s).await?))
}

/// `GET /metrics`: the Prometheus (OpenMetrics) text format.
pub(super) async fn metrics(State(s): State<AppState>) -> Result<Response, HttpError> {
    let r = report(&s).await?;
    let g = crate::lane::metrics::Gauges {
        by_state: r
            .counts
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        oldest_pending_age: r.oldest_pending.as_ref().map_or(0, |o| o.age_seconds),
        offline_seconds: i64::try_from(r.ceiling.offline_seconds).unwrap_or(i64::MAX),
        lane_state: Some(r.lane_state),
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
