//! The head-office pages: `/`, every lane at a glance, the most urgent
//! first, each with what is wrong and what to do; `/lanes/{lane}`, one
//! lane's series, missing receipt numbers and refused documents.
//! Server-rendered (askama), no external assets, no script; they refresh
//! themselves. A browser signs in with HTTP Basic: any user name, a head
//! office reader's token as the password.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{AppState, lane_marks, page_error};
use super::office::{Kind, LaneView, SeriesHole, SeriesView, Trouble, words};
use crate::common::http::HttpError;

/// Seconds between the pages' own refreshes.
const REFRESH_SECONDS: u32 = 30;
/// Lanes with nothing to do listed on the overview; the rest are counted
/// (every lane in trouble is listed).
const OK_SHOWN: usize = 500;

struct Tile {
    code: &'static str,
    label: &'static str,
    count: usize,
}

struct Row {
    lane_id: String,
    status: &'static str,
    status_words: &'static str,
    trouble: Vec<Trouble>,
    watermarks: String,
    missing: i64,
    certified: String,
    heard: String,
}

#[derive(Template)]
#[template(path = "office.html", config = "src/salemap/askama.toml")]
struct OfficePage {
    title: String,
    headline: String,
    subline: String,
    in_trouble: usize,
    tiles: Vec<Tile>,
    rows: Vec<Row>,
    hidden: usize,
    generated_at: String,
    refresh_seconds: u32,
    old_after: String,
    ceiling: String,
}

struct HoleRow {
    series: String,
    hole: super::office::HoleView,
    age: String,
}

#[derive(Template)]
#[template(path = "lane.html", config = "src/salemap/askama.toml")]
struct LanePage {
    lane_id: String,
    status: &'static str,
    status_words: &'static str,
    trouble: Vec<Trouble>,
    heard: String,
    series: Vec<SeriesView>,
    holes: Vec<HoleRow>,
    conflicts: Vec<super::store::marks::Conflict>,
    rows_limit: i64,
    refresh_seconds: u32,
}

/// A status in a few words.
fn status_words(status: &str) -> &'static str {
    match status {
        "chain_conflict" => "Forked journal",
        "old_hole" => "Sales missing",
        "silent" => "Silent",
        "uncertified_day" => "Day not certified",
        _ => "All held",
    }
}

/// When a lane was last heard from, in words.
fn heard(v: &LaneView) -> String {
    match v.silent_s {
        Some(s) => format!("{} ago", words(s)),
        None => "never".to_owned(),
    }
}

fn row(v: LaneView) -> Row {
    let watermarks = series_figures(&v.series, |s| format!("{}", s.watermark));
    let certified = series_figures(&v.series, |s| match &s.last_certified {
        Some(c) => c.business_date.clone(),
        None => "none".to_owned(),
    });
    Row {
        status_words: status_words(v.status),
        heard: heard(&v),
        lane_id: v.lane_id,
        status: v.status,
        missing: v.series.iter().map(|s| s.missing).sum(),
        trouble: v.trouble,
        watermarks,
        certified,
    }
}

/// One figure per series: the figure alone for a lane's one series,
/// `series figure` for each of several.
fn series_figures(series: &[SeriesView], f: impl Fn(&SeriesView) -> String) -> String {
    match series {
        [] => "none yet".to_owned(),
        [one] => f(one),
        many => many
            .iter()
            .map(|s| format!("{} {}", s.series, f(s)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// An HTML page, or the page's error as plain HTTP: a browser is asked
/// to sign in.
fn html(page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the head-office page");
            page_error().into_response()
        }
    }
}

/// A refusal a browser understands: `401` asks it to sign in.
fn refused(e: HttpError) -> Response {
    let mut r = e.into_response();
    if r.status() == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Basic realm=\"salemap head office (password: your reader token)\", charset=\"UTF-8\"",
            ),
        );
    }
    r
}

/// `GET /`: every lane at a glance, the most urgent first.
pub(super) async fn overview(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = s.office(&headers) {
        return refused(e);
    }
    let marks = match s.store().marks(s.tenant(), None).await {
        Ok(m) => m,
        Err(e) => return HttpError::from(e).into_response(),
    };
    let judge = s.judge();
    let o = judge.overview(&marks);
    let tiles = [
        ("chain_conflict", "Forked journals"),
        ("old_hole", "Sales missing"),
        ("silent", "Silent lanes"),
        ("uncertified_day", "Days not certified"),
        ("ok", "All held"),
    ]
    .into_iter()
    .map(|(code, label)| Tile {
        code,
        label,
        count: o.by_status.get(code).copied().unwrap_or(0),
    })
    .collect();
    let (headline, subline) = match o.lanes_in_trouble {
        0 => (
            format!("All {} lanes: every sale held", o.lanes_total),
            "Nothing to do.".to_owned(),
        ),
        n => (
            format!("{n} of {} lanes need attention", o.lanes_total),
            "The most urgent come first; each says what to do.".to_owned(),
        ),
    };
    let mut rows = Vec::new();
    let mut hidden = 0;
    let mut ok_shown = 0;
    for v in o.lanes {
        if v.trouble.is_empty() {
            if ok_shown == OK_SHOWN {
                hidden += 1;
                continue;
            }
            ok_shown += 1;
        }
        rows.push(row(v));
    }
    html(
        OfficePage {
            title: format!("Head office: {headline}"),
            headline,
            subline,
            in_trouble: o.lanes_in_trouble,
            tiles,
            rows,
            hidden,
            generated_at: o.generated_at,
            refresh_seconds: REFRESH_SECONDS,
            old_after: words(i64::try_from(judge.old_after.as_secs()).unwrap_or(i64::MAX)),
            ceiling: words(i64::try_from(judge.ceiling.as_secs()).unwrap_or(i64::MAX)),
        }
        .render(),
    )
}

/// `GET /lanes/{lane}`: one lane in full.
pub(super) async fn lane(
    State(s): State<AppState>,
    Path(lane_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let detail = match lane_marks(&s, &headers, &lane_id).await {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    let d = s.judge().detail(&detail);
    let status = d
        .lane
        .trouble
        .first()
        .map_or("ok", |t: &Trouble| Kind::code(t.code));
    html(
        LanePage {
            status_words: status_words(status),
            status,
            heard: heard(&d.lane),
            lane_id: d.lane.lane_id,
            trouble: d.lane.trouble,
            series: d.lane.series,
            holes: d
                .holes
                .into_iter()
                .map(|SeriesHole { series, hole }| HoleRow {
                    age: words(hole.age_s),
                    series,
                    hole,
                })
                .collect(),
            conflicts: d.conflicts,
            rows_limit: d.rows_limit,
            refresh_seconds: REFRESH_SECONDS,
        }
        .render(),
    )
}
