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
use crate::lane::messages::{Arg, Words};
use crate::lane::status::{Report, Trouble, Verdict};
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
    /// What the refusal means, in plain words.
    reason: String,
    /// The back-end's code and message, for support.
    technical: String,
}

/// A trouble as the page shows it.
struct Shown {
    code: &'static str,
    tone: &'static str,
    headline: String,
    action: String,
    detail: Option<String>,
}

/// Every word of the page that does not depend on the lane's figures.
struct Labels {
    waiting: String,
    attention: String,
    oldest: String,
    last_sync: String,
    amount_waiting: String,
    stuck_heading: String,
    stuck_intro: String,
    col_receipt: String,
    col_total: String,
    col_waiting: String,
    col_reason: String,
    details: String,
    also: String,
    clock_heading: String,
    sync_now: String,
    /// The "Sync now" script's words: a JSON object, safe inside `<script>`.
    sync_words: String,
}

impl Labels {
    fn new(w: Words) -> Labels {
        Labels {
            waiting: w.get("page-waiting"),
            attention: w.get("page-attention"),
            oldest: w.get("page-oldest"),
            last_sync: w.get("page-last-sync"),
            amount_waiting: w.get("page-amount-waiting"),
            stuck_heading: w.get("page-stuck-heading"),
            stuck_intro: w.get("page-stuck-intro"),
            col_receipt: w.get("page-col-receipt"),
            col_total: w.get("page-col-total"),
            col_waiting: w.get("page-col-waiting"),
            col_reason: w.get("page-col-reason"),
            details: w.get("page-details"),
            also: w.get("page-also"),
            clock_heading: w.get("page-clock-heading"),
            sync_now: w.get("page-sync-now"),
            sync_words: json!({
                "contacting": w.get("page-sync-contacting"),
                "requested": w.get("page-sync-requested"),
                "failed": w.get("page-sync-failed"),
                "unreachable": w.get("page-sync-unreachable"),
            })
            .to_string()
            // Nothing in it can close the script element.
            .replace('<', "\\u003c"),
        }
    }
}

#[derive(Template)]
#[template(path = "status.html", config = "src/lane/api/askama.toml")]
struct Page {
    lang: &'static str,
    title: String,
    l: Labels,
    lane_state: &'static str,
    verdict: &'static str,
    banner: Shown,
    others: Vec<Shown>,
    pending: i64,
    stuck: i64,
    oldest_pending: String,
    last_sync: String,
    amounts: Vec<Amount>,
    stuck_sales: Vec<StuckSale>,
    stuck_more: Option<String>,
    clock: Option<String>,
    has_backend: bool,
    footer: String,
    refresh_seconds: u32,
}

/// The colour of a verdict on the page.
fn tone(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Info => "info",
        Verdict::Warning => "warn",
        Verdict::Attention => "act",
        Verdict::Stopped => "stop",
    }
}

fn shown(w: Words, t: &Trouble) -> Shown {
    Shown {
        code: t.code,
        tone: tone(t.severity),
        headline: w.say(&t.headline),
        action: w.say(&t.action),
        detail: t.detail.clone(),
    }
}

/// The banner and the other troubles: the worst thing on the lane leads.
fn banner(w: Words, r: &Report) -> (Shown, Vec<Shown>) {
    let mut all = r.troubles.iter().map(|t| shown(w, t));
    let first = all.next().unwrap_or_else(|| Shown {
        code: "ok",
        tone: "ok",
        headline: w.get("banner-ok"),
        action: w.get("banner-ok-do"),
        detail: None,
    });
    (first, all.collect())
}

/// `GET /`: the status page, in the browser's language when laned speaks
/// it, else in the lane's `locale`.
pub(super) async fn page(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let w = s.words(&headers);
    let locale = w.0;
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
    let ago = |at: &str| {
        at.parse::<jiff::Timestamp>()
            .map_or_else(|_| at.to_owned(), |t| w.ago(now, t))
    };
    let zone = jiff::tz::TimeZone::get(&r.snapshot.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let (banner, others) = banner(w, &r);
    let stuck_more = (stuck - stuck_rows.len() as i64).max(0);
    let page = Page {
        lang: locale.as_str(),
        title: w.with(
            "page-title",
            &[
                ("lane", r.lane_id.as_str().into()),
                ("headline", banner.headline.clone().into()),
            ],
        ),
        l: Labels::new(w),
        lane_state: r.lane_state.as_str(),
        verdict: r.verdict.as_str(),
        banner,
        others,
        pending: r.count("pending"),
        stuck,
        oldest_pending: r.oldest_pending.as_ref().map_or_else(
            || w.get("time-none"),
            |o| {
                o.recorded_at.parse::<jiff::Timestamp>().map_or_else(
                    |_| o.recorded_at.clone(),
                    |t| w.duration(now.duration_since(t).unsigned_abs()),
                )
            },
        ),
        last_sync: backend
            .and_then(|b| b.last_success_at.as_deref())
            .map_or_else(|| w.get("time-never"), ago),
        amounts: r
            .pending_amount
            .iter()
            .map(|(cur, minor)| Amount {
                currency: cur.clone(),
                minor: *minor,
                shown: display(*minor, cur),
            })
            .collect(),
        stuck_more: (stuck_more > 0)
            .then(|| w.with("page-stuck-more", &[("n", stuck_more.into())])),
        stuck_sales: stuck_rows
            .into_iter()
            .map(|row| {
                let code = row.last_error_code.unwrap_or_default();
                StuckSale {
                    receipt: receipt_label(&row.series, row.receipt_no),
                    total: display(row.total, &row.currency),
                    age: ago(&row.recorded_at),
                    reason: w.backend_code(&code),
                    technical: format!("{code}: {}", row.last_error.unwrap_or_default()),
                    transaction_id: row.transaction_id,
                }
            })
            .collect(),
        clock: r.snapshot.anomalies.last_at.map(|t| {
            w.with(
                "page-clock-text",
                &[
                    ("n", Arg::from(r.snapshot.anomalies.count)),
                    ("when", w.ago(now, t).into()),
                ],
            )
        }),
        has_backend: backend.is_some(),
        footer: w.with(
            "page-footer",
            &[
                ("lane", r.lane_id.as_str().into()),
                ("version", crate::VERSION.into()),
                (
                    "updated",
                    now.to_zoned(zone)
                        .strftime("%Y-%m-%d %H:%M:%S %Z")
                        .to_string()
                        .into(),
                ),
                ("seconds", Arg::from(REFRESH_SECONDS)),
            ],
        ),
        refresh_seconds: REFRESH_SECONDS,
    };
    let html = page.render().map_err(|e| error::page_failed(&e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::VARY, "Accept-Language"),
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
