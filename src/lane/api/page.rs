//! The status page at `/` for store staff: the lane's state in words, the
//! countdown to the sync ceiling, the backlog, the stuck sales, and a
//! "Sync now" button. Server-rendered (askama), no external assets, no
//! secret in the page; it refreshes itself.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, error};
use crate::common::http::HttpError;
use crate::contract::money::display;
use crate::lane::ceiling::LaneState;
use crate::lane::guard::{Snapshot, human};
use crate::lane::store::{ListFilter, SaleState, receipt_label};

/// Seconds between the page's own refreshes.
const REFRESH_SECONDS: u32 = 10;
/// Stuck sales listed on the page; the rest are counted.
const STUCK_SHOWN: i64 = 50;

struct Amount {
    currency: String,
    minor: i64,
    shown: String,
}

struct StuckSale {
    transaction_id: String,
    receipt: String,
    total: String,
    age: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "status.html", config = "src/lane/api/askama.toml")]
struct Page {
    lane_id: String,
    version: &'static str,
    lane_state: &'static str,
    tone: &'static str,
    headline: String,
    detail: Option<String>,
    pending: i64,
    stuck: i64,
    oldest_pending: String,
    last_sync: String,
    amounts: Vec<Amount>,
    fault: Option<String>,
    stuck_sales: Vec<StuckSale>,
    stuck_more: i64,
    clock_anomalies: u32,
    last_anomaly: Option<String>,
    has_backend: bool,
    updated: String,
    refresh_seconds: u32,
}

fn ago(now: jiff::Timestamp, at: &str) -> String {
    at.parse::<jiff::Timestamp>()
        .map(|t| since(now, t))
        .unwrap_or_else(|_| at.to_owned())
}

/// "just now", "5 min ago", "2 days 3 h ago".
fn since(now: jiff::Timestamp, t: jiff::Timestamp) -> String {
    let d = now.duration_since(t).unsigned_abs();
    if d.as_secs() < 10 {
        "just now".into()
    } else {
        format!("{} ago", human(d))
    }
}

/// A countdown or an outage the way a cashier says it: hours up to three
/// days ("3 h 12 min", "24 h"), days beyond.
fn hours(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m) = (s / 3600, s / 60 % 60);
    match (h, m) {
        (0, _) => human(d),
        (h, _) if h >= 72 => human(d),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The headline store staff read first, its tone and the sentence below it.
fn headline(
    snap: &Snapshot,
    has_backend: bool,
    restored: bool,
) -> (&'static str, String, Option<String>) {
    if restored {
        return (
            "stop",
            "Sales stopped: this till was restored from an old copy".into(),
            Some("Head office has receipts this till does not know about. Call support before selling; nothing is lost.".into()),
        );
    }
    if !has_backend {
        return (
            "warn",
            "Not connected to head office".into(),
            Some("No head office address is configured: sales are kept on this till only.".into()),
        );
    }
    let remaining = snap.nearest.map(|(_, d)| hours(d));
    match snap.state {
        LaneState::Online => ("ok", "Connected".into(), None),
        LaneState::Offline | LaneState::Warning => {
            let tone = if snap.state == LaneState::Warning {
                "warn"
            } else {
                "info"
            };
            let head = match (&remaining, snap.enforced) {
                (Some(r), true) => format!("Offline — {r} until sales stop"),
                _ => "Offline".into(),
            };
            (
                tone,
                head,
                Some(format!(
                    "Sales are kept on this till and sent when head office is back. Not reached for {}.",
                    hours(snap.offline)
                )),
            )
        }
        LaneState::Suspended if snap.downtime_unknown => (
            "stop",
            "Sales stopped: the till's clock was set back while it was off".into(),
            Some(
                "Nobody can tell how long this till was offline, so it must reach head office \
                 before it sells again. Check the network connection; sales resume by \
                 themselves once head office answers. If the till's clock is wrong, call \
                 support."
                    .into(),
            ),
        ),
        LaneState::Suspended => (
            "stop",
            format!(
                "Sales stopped: no sync for {}",
                hours(snap.limits.sync_ceiling.unwrap_or(snap.offline))
            ),
            Some(format!(
                "{}. Check the till's network connection; sales resume by themselves once head office answers.",
                capitalise(&crate::lane::guard::reason(snap))
            )),
        ),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `GET /`: the status page.
pub(super) async fn page(State(s): State<AppState>) -> Result<Response, HttpError> {
    let r = super::status::report(&s).await?;
    let now = s.inner.clock.wall();
    let stuck_rows = s
        .store()
        .list(ListFilter {
            state: Some(SaleState::Stuck),
            after: 0,
            limit: STUCK_SHOWN,
        })
        .await?;
    let stuck = r.count("stuck");
    let backend = r.backend.as_ref();
    let snap = &r.snapshot;
    let (tone, head, detail) =
        headline(snap, backend.is_some(), r.restored_from_old_copy.is_some());
    let page = Page {
        lane_id: r.lane_id.clone(),
        version: crate::VERSION,
        lane_state: r.lane_state.as_str(),
        tone,
        headline: head,
        detail,
        pending: r.count("pending"),
        stuck,
        oldest_pending: r.oldest_pending.as_ref().map_or_else(
            || "none".into(),
            |o| ago(now, &o.recorded_at).replace(" ago", ""),
        ),
        last_sync: backend
            .and_then(|b| b.last_success_at.as_deref())
            .map_or_else(|| "never".into(), |at| ago(now, at)),
        amounts: r
            .pending_amount
            .iter()
            .map(|(cur, minor)| Amount {
                currency: cur.clone(),
                minor: *minor,
                shown: display(*minor, cur),
            })
            .collect(),
        fault: backend
            .and_then(|b| b.fault.as_ref())
            .map(|f| f.message.clone()),
        stuck_more: (stuck - stuck_rows.len() as i64).max(0),
        stuck_sales: stuck_rows
            .into_iter()
            .map(|r| StuckSale {
                receipt: receipt_label(&r.series, r.receipt_no),
                total: display(r.total, &r.currency),
                age: ago(now, &r.recorded_at),
                reason: r.last_error.unwrap_or_default(),
                transaction_id: r.transaction_id,
            })
            .collect(),
        clock_anomalies: snap.anomalies.count,
        last_anomaly: snap.anomalies.last_at.map(|t| since(now, t)),
        has_backend: backend.is_some(),
        updated: now.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        refresh_seconds: REFRESH_SECONDS,
    };
    let html = page.render().map_err(|e| error::page_failed(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                 connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        html,
    )
        .into_response())
}

/// `POST /v1/status/sync` (JSON body, so a page on another site cannot
/// send it): the page's "Sync now". Audit-logged as `status-page`.
pub(super) async fn sync(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    super::require_json(&headers)?;
    let Some(drain) = &s.inner.drain else {
        return Err(error::no_backend());
    };
    s.store()
        .sync_now(
            s.inner.clock.wall(),
            "status-page".into(),
            "Sync now pressed on the status page".into(),
        )
        .await?;
    drain.sync();
    tracing::info!("sync requested on the status page");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "sync requested"})),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::hours;
    use std::time::Duration;

    #[test]
    fn countdowns_read_in_hours_up_to_three_days() {
        let h = |s| hours(Duration::from_secs(s));
        assert_eq!(h(45), "45 s");
        assert_eq!(h(3 * 3600 + 12 * 60), "3 h 12 min");
        assert_eq!(h(24 * 3600), "24 h");
        assert_eq!(h(30 * 3600 + 59), "30 h");
        assert_eq!(h(72 * 3600), "3 days");
    }
}
