//! What head office sees of its lanes (docs/backend-contract.md, "What
//! head office sees"): each lane's watermarks, holes, closings and
//! refused documents, judged against the time now and sorted by trouble,
//! for `GET /v1/lanes`, the head-office page and `/metrics`. Nothing here
//! touches a database: the store's [`LaneMarks`] go in, the views come out.

use std::time::Duration;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::store::marks::{Conflict, Hole, LaneDetail, LaneMarks, SeriesMarks};

/// How old a hole or an uncertified closing may grow before it is
/// trouble: a sale held back by a lane's retries or a slow link arrives
/// well within it.
pub const OLD_AFTER: Duration = Duration::from_secs(3600);

/// The lanes' sync ceiling when salemap is not told otherwise: the lane's
/// own default (24 hours).
pub const DEFAULT_CEILING: Duration = Duration::from_secs(24 * 3600);

/// What head office judges by.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// The time now.
    pub now: Timestamp,
    /// How old a hole or an uncertified day may be before it is trouble.
    pub old_after: Duration,
    /// How long a lane may go unheard before it is trouble (the lanes'
    /// sync ceiling: past it, a lane stops selling).
    pub ceiling: Duration,
}

/// A kind of trouble, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Documents refused because they contradict what salemap holds: a
    /// lane restored or cloned from an old copy.
    ChainConflict,
    /// Receipt numbers missing for longer than [`Judge::old_after`].
    OldHole,
    /// Not heard from for longer than the sync ceiling.
    Silent,
    /// A closed day whose documents salemap does not all hold, for longer
    /// than [`Judge::old_after`].
    UncertifiedDay,
}

impl Kind {
    /// Its stable code.
    pub fn code(self) -> &'static str {
        match self {
            Kind::ChainConflict => "chain_conflict",
            Kind::OldHole => "old_hole",
            Kind::Silent => "silent",
            Kind::UncertifiedDay => "uncertified_day",
        }
    }
}

/// One trouble of a lane, in words, with what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Trouble {
    /// What it is.
    pub code: Kind,
    /// The series it is in (none for a silent lane).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// How long it has lasted, seconds.
    pub age_s: i64,
    /// What is wrong, in a sentence.
    pub message: String,
    /// What to do about it.
    pub action: String,
}

/// A hole as head office sees it.
#[derive(Debug, Clone, Serialize)]
pub struct HoleView {
    /// The first number missing.
    pub first_no: i64,
    /// The last number missing.
    pub last_no: i64,
    /// When salemap first saw them missing.
    pub missing_since: String,
    /// For how long, seconds.
    pub age_s: i64,
}

/// A closing as head office sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClosingView {
    /// Its number.
    pub closing_no: i64,
    /// The day it closes.
    pub business_date: String,
    /// When salemap got it (only for one not certified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// For how long it has waited for its certificate, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_s: Option<i64>,
}

/// One series of a lane.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    /// The series.
    pub series: String,
    /// Every receipt number 1..watermark is held.
    pub watermark: i64,
    /// The highest receipt number held.
    pub highest_receipt_no: i64,
    /// Receipt numbers below the highest not held.
    pub missing: i64,
    /// The oldest hole (the lowest).
    pub oldest_hole: Option<HoleView>,
    /// Closings held.
    pub closings: i64,
    /// Closings certified.
    pub certified: i64,
    /// The last day certified.
    pub last_certified: Option<ClosingView>,
    /// The first closing held that is not certified.
    pub oldest_uncertified: Option<ClosingView>,
    /// Documents refused as a forked lane.
    pub conflicts: i64,
    /// When the last was refused.
    pub last_conflict_at: Option<String>,
}

/// One lane, judged.
#[derive(Debug, Clone, Serialize)]
pub struct LaneView {
    /// The lane.
    pub lane_id: String,
    /// `ok`, or the code of its worst trouble.
    pub status: &'static str,
    /// Its troubles, worst first.
    pub trouble: Vec<Trouble>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<String>,
    /// The last time it posted.
    pub last_posted: Option<String>,
    /// Seconds since salemap last heard from it.
    pub silent_s: Option<i64>,
    /// Its series.
    pub series: Vec<SeriesView>,
}

/// A hole of a series, in a lane's detail.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesHole {
    /// The series.
    pub series: String,
    /// The hole.
    #[serde(flatten)]
    pub hole: HoleView,
}

/// `GET /v1/lanes/{lane}`.
#[derive(Debug, Clone, Serialize)]
pub struct LaneDetailView {
    /// When it was read.
    pub generated_at: String,
    /// The lane.
    #[serde(flatten)]
    pub lane: LaneView,
    /// Its holes, series by series, lowest first.
    pub holes: Vec<SeriesHole>,
    /// Its refused documents, latest first.
    pub conflicts: Vec<Conflict>,
    /// The lists were cut at this many rows.
    pub rows_limit: i64,
}

/// `GET /v1/lanes`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When it was read.
    pub generated_at: String,
    /// Lanes known.
    pub lanes_total: usize,
    /// Lanes with trouble.
    pub lanes_in_trouble: usize,
    /// Lanes per status (`ok` and each trouble's code).
    pub by_status: std::collections::BTreeMap<&'static str, usize>,
    /// How long a hole or uncertified day may be before it is trouble, s.
    pub old_after_s: u64,
    /// How long a lane may go unheard, s.
    pub ceiling_s: u64,
    /// Every lane, worst first.
    pub lanes: Vec<LaneView>,
}

fn parse(ts: &str) -> Option<Timestamp> {
    ts.parse().ok()
}

/// Seconds from `ts` to `now` (0 if `ts` is later or unreadable).
fn age(now: Timestamp, ts: &str) -> i64 {
    parse(ts).map_or(0, |t| now.duration_since(t).as_secs().max(0))
}

/// The later of two times.
fn latest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if parse(x) >= parse(y) { x } else { y }),
        (x, y) => x.or(y),
    }
}

/// Seconds, in words: "3 min", "2 h 5 min", "4 days".
pub fn words(s: i64) -> String {
    match s {
        ..60 => format!("{} s", s.max(0)),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match s / 86_400 {
            1 => "1 day".to_owned(),
            d => format!("{d} days"),
        },
    }
}

fn hole_view(now: Timestamp, h: &Hole) -> HoleView {
    HoleView {
        first_no: h.first_no,
        last_no: h.last_no,
        missing_since: h.opened_at.clone(),
        age_s: age(now, &h.opened_at),
    }
}

/// `n` and the noun, singular or plural.
fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn range(first: i64, last: i64) -> String {
    if first == last {
        format!("receipt {first}")
    } else {
        format!("receipts {first} to {last}")
    }
}

impl Judge {
    fn series(&self, m: &SeriesMarks, trouble: &mut Vec<Trouble>) -> SeriesView {
        let old = i64::try_from(self.old_after.as_secs()).unwrap_or(i64::MAX);
        if m.conflicts > 0 {
            let age_s = m
                .last_conflict_at
                .as_deref()
                .map_or(0, |t| age(self.now, t));
            trouble.push(Trouble {
                code: Kind::ChainConflict,
                series: Some(m.series.clone()),
                age_s,
                message: format!(
                    "{} of series {} {} what head office holds, the last refused {} ago: \
                     this lane's journal forked (it was restored or cloned from an old copy).",
                    count(m.conflicts, "document", "documents"),
                    m.series,
                    if m.conflicts == 1 {
                        "contradicts"
                    } else {
                        "contradict"
                    },
                    words(age_s)
                ),
                action: "Stop the lane and call support: the refused sales are on the till, \
                         stuck; support exports and settles them, and finds which copy of the \
                         lane is the real one."
                    .to_owned(),
            });
        }
        let oldest_hole = m.oldest_hole.as_ref().map(|h| hole_view(self.now, h));
        if let Some(h) = oldest_hole.as_ref().filter(|h| h.age_s >= old) {
            trouble.push(Trouble {
                code: Kind::OldHole,
                series: Some(m.series.clone()),
                age_s: h.age_s,
                message: format!(
                    "{} of series {} missing, the oldest ({}) for {}.",
                    count(m.missing, "receipt number", "receipt numbers"),
                    m.series,
                    range(h.first_no, h.last_no),
                    words(h.age_s)
                ),
                action: "Check the lane's status page: a sale that cannot get through is \
                         listed there as stuck; support explains and settles it."
                    .to_owned(),
            });
        }
        let oldest_uncertified = m.oldest_uncertified.as_ref().map(|u| ClosingView {
            closing_no: u.closing_no,
            business_date: u.business_date.clone(),
            received_at: Some(u.posted_at.clone()),
            age_s: Some(age(self.now, &u.posted_at)),
        });
        if let Some(u) = &oldest_uncertified {
            let age_s = u.age_s.unwrap_or(0);
            if age_s >= old {
                trouble.push(Trouble {
                    code: Kind::UncertifiedDay,
                    series: Some(m.series.clone()),
                    age_s,
                    message: format!(
                        "{} of series {} not certified, the first {} (closing {}): \
                         head office does not hold every document of it.",
                        count(m.closings - m.certified, "closed day", "closed days"),
                        m.series,
                        u.business_date,
                        u.closing_no
                    ),
                    action: "Look for the series' holes and refused documents on this lane; \
                             the day is certified as soon as they arrive."
                        .to_owned(),
                });
            }
        }
        SeriesView {
            series: m.series.clone(),
            watermark: m.watermark,
            highest_receipt_no: m.highest,
            missing: m.missing,
            oldest_hole,
            closings: m.closings,
            certified: m.certified,
            last_certified: m.last_certified.as_ref().map(|(n, d)| ClosingView {
                closing_no: *n,
                business_date: d.clone(),
                received_at: None,
                age_s: None,
            }),
            oldest_uncertified,
            conflicts: m.conflicts,
            last_conflict_at: m.last_conflict_at.clone(),
        }
    }

    /// One lane, judged.
    pub fn lane(&self, l: &LaneMarks) -> LaneView {
        let mut trouble = Vec::new();
        let series = l
            .series
            .iter()
            .map(|m| self.series(m, &mut trouble))
            .collect();
        let heard = latest(l.last_heartbeat.as_deref(), l.last_posted.as_deref());
        let silent_s = heard.map(|t| age(self.now, t));
        let ceiling = i64::try_from(self.ceiling.as_secs()).unwrap_or(i64::MAX);
        if let Some(s) = silent_s.filter(|s| *s >= ceiling) {
            trouble.push(Trouble {
                code: Kind::Silent,
                series: None,
                age_s: s,
                message: format!(
                    "Head office has not heard from this lane for {}: past its sync ceiling, \
                     it has stopped selling.",
                    words(s)
                ),
                action: "Check the till's network link to head office, and the lane's \
                         status page."
                    .to_owned(),
            });
        }
        trouble.sort_by(|a, b| a.code.cmp(&b.code).then(b.age_s.cmp(&a.age_s)));
        LaneView {
            lane_id: l.lane_id.clone(),
            status: trouble.first().map_or("ok", |t| t.code.code()),
            trouble,
            last_heartbeat: l.last_heartbeat.clone(),
            last_posted: l.last_posted.clone(),
            silent_s,
            series,
        }
    }

    /// Every lane, worst first: by its worst trouble, then the oldest
    /// trouble, then lane id.
    pub fn overview(&self, lanes: &[LaneMarks]) -> Overview {
        let mut views: Vec<LaneView> = lanes.iter().map(|l| self.lane(l)).collect();
        views.sort_by(|a, b| {
            let rank = |v: &LaneView| v.trouble.first().map(|t| (t.code, -t.age_s));
            match (rank(a), rank(b)) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.lane_id.cmp(&b.lane_id))
        });
        let mut by_status = std::collections::BTreeMap::new();
        for v in &views {
            *by_status.entry(v.status).or_insert(0) += 1;
        }
        Overview {
            generated_at: crate::common::time::fmt_ts(self.now),
            lanes_total: views.len(),
            lanes_in_trouble: views.iter().filter(|v| !v.trouble.is_empty()).count(),
            by_status,
            old_after_s: self.old_after.as_secs(),
            ceiling_s: self.ceiling.as_secs(),
            lanes: views,
        }
    }

    /// One lane in full.
    pub fn detail(&self, d: &LaneDetail) -> LaneDetailView {
        LaneDetailView {
            generated_at: crate::common::time::fmt_ts(self.now),
            lane: self.lane(&d.marks),
            holes: d
                .holes
                .iter()
                .map(|(series, h)| SeriesHole {
                    series: series.clone(),
                    hole: hole_view(self.now, h),
                })
                .collect(),
            conflicts: d.conflicts.clone(),
            rows_limit: super::store::marks::DETAIL_ROWS,
        }
    }
}

/// Labels of a lane's figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: String,
}

/// Labels of a series' figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeriesLabel {
    lane: String,
    series: String,
}

/// Labels of the lane count per status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// `/metrics` in the OpenMetrics text format: the figures of
/// [`Overview`], per lane and series, read fresh at each scrape.
pub fn metrics(o: &Overview, gate: &super::admission::Gauges) -> String {
    let mut registry = Registry::with_prefix("salemap");
    let by_status = Family::<StatusLabel, Gauge>::default();
    let watermark = Family::<SeriesLabel, Gauge>::default();
    let highest = Family::<SeriesLabel, Gauge>::default();
    let missing = Family::<SeriesLabel, Gauge>::default();
    let oldest_hole = Family::<SeriesLabel, Gauge>::default();
    let uncertified = Family::<SeriesLabel, Gauge>::default();
    let certified = Family::<SeriesLabel, Gauge>::default();
    let conflicts = Family::<SeriesLabel, Gauge>::default();
    let silent = Family::<LaneLabel, Gauge>::default();
    for s in [
        "ok",
        "chain_conflict",
        "old_hole",
        "silent",
        "uncertified_day",
    ] {
        let n = o.by_status.get(s).copied().unwrap_or(0);
        by_status
            .get_or_create(&StatusLabel {
                status: s.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for l in &o.lanes {
        if let Some(s) = l.silent_s {
            silent
                .get_or_create(&LaneLabel {
                    lane: l.lane_id.clone(),
                })
                .set(s);
        }
        for s in &l.series {
            let label = SeriesLabel {
                lane: l.lane_id.clone(),
                series: s.series.clone(),
            };
            watermark.get_or_create(&label).set(s.watermark);
            highest.get_or_create(&label).set(s.highest_receipt_no);
            missing.get_or_create(&label).set(s.missing);
            oldest_hole
                .get_or_create(&label)
                .set(s.oldest_hole.as_ref().map_or(0, |h| h.age_s));
            certified.get_or_create(&label).set(s.certified);
            uncertified
                .get_or_create(&label)
                .set(s.closings - s.certified);
            conflicts.get_or_create(&label).set(s.conflicts);
        }
    }
    registry.register(
        "lanes",
        "Lanes by status: ok, or their worst trouble",
        by_status,
    );
    registry.register(
        "watermark",
        "Every receipt number up to this one is held",
        watermark,
    );
    registry.register(
        "highest_receipt_no",
        "The highest receipt number held",
        highest,
    );
    registry.register(
        "missing_receipts",
        "Receipt numbers below the highest not held",
        missing,
    );
    registry.register(
        "oldest_hole_age_seconds",
        "How long the oldest missing receipt number has been missing (0: none)",
        oldest_hole,
    );
    registry.register("certified_days", "Closings certified", certified);
    registry.register(
        "uncertified_days",
        "Closings held whose day is not certified",
        uncertified,
    );
    registry.register(
        "refused_documents",
        "Documents refused as contradicting the chain held (a forked lane)",
        conflicts,
    );
    registry.register(
        "lane_silent_seconds",
        "Seconds since the lane's last heartbeat or posting",
        silent,
    );
    let gauge = |v: usize| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    registry.register(
        "in_flight_requests",
        "Posting requests worked on now",
        gauge(gate.in_flight),
    );
    registry.register(
        "in_flight_limit",
        "Posting requests worked on at once, at most",
        gauge(gate.limits.in_flight),
    );
    registry.register(
        "waiting_requests",
        "Posting requests waiting for a place now",
        gauge(gate.waiting),
    );
    let busy = prometheus_client::metrics::counter::Counter::<u64>::default();
    busy.inc_by(gate.refused_total);
    registry.register(
        "busy_refusals",
        "Requests answered 429 busy (back-pressure) since start",
        busy,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(lane: &str, heard: &str, f: impl FnOnce(&mut SeriesMarks)) -> LaneMarks {
        let mut s = SeriesMarks {
            series: "S".into(),
            watermark: 10,
            highest: 10,
            missing: 0,
            oldest_hole: None,
            closings: 0,
            certified: 0,
            last_certified: None,
            oldest_uncertified: None,
            conflicts: 0,
            last_conflict_at: None,
        };
        f(&mut s);
        LaneMarks {
            lane_id: lane.into(),
            last_heartbeat: Some(heard.into()),
            last_posted: None,
            series: vec![s],
        }
    }

    #[test]
    fn lanes_come_worst_first_and_young_holes_are_not_trouble() {
        let judge = Judge {
            now: "2026-12-01T12:00:00Z".parse().unwrap(),
            old_after: OLD_AFTER,
            ceiling: DEFAULT_CEILING,
        };
        let hole = |at: &str| Hole {
            first_no: 4,
            last_no: 5,
            opened_at: at.into(),
        };
        let lanes = vec![
            marks("A-ok", "2026-12-01T11:59:00Z", |_| {}),
            marks("B-young-hole", "2026-12-01T11:59:00Z", |s| {
                s.oldest_hole = Some(hole("2026-12-01T11:30:00Z"));
                s.missing = 2;
                s.watermark = 3;
            }),
            marks("C-silent", "2026-11-29T11:00:00Z", |_| {}),
            marks("D-old-hole", "2026-12-01T11:59:00Z", |s| {
                s.oldest_hole = Some(hole("2026-12-01T09:00:00Z"));
                s.missing = 2;
            }),
            marks("E-conflict", "2026-12-01T11:59:00Z", |s| {
                s.conflicts = 1;
                s.last_conflict_at = Some("2026-12-01T11:00:00Z".into());
            }),
            marks("F-older-hole", "2026-12-01T11:59:00Z", |s| {
                s.oldest_hole = Some(hole("2026-11-30T09:00:00Z"));
                s.missing = 2;
            }),
        ];
        let o = judge.overview(&lanes);
        let order: Vec<(&str, &str)> = o
            .lanes
            .iter()
            .map(|l| (l.lane_id.as_str(), l.status))
            .collect();
        assert_eq!(
            order,
            [
                ("E-conflict", "chain_conflict"),
                ("F-older-hole", "old_hole"),
                ("D-old-hole", "old_hole"),
                ("C-silent", "silent"),
                ("A-ok", "ok"),
                ("B-young-hole", "ok"),
            ]
        );
        assert_eq!((o.lanes_total, o.lanes_in_trouble), (6, 4));
        let d = &o.lanes[2];
        assert_eq!(
            d.series[0].oldest_hole.as_ref().map(|h| h.age_s),
            Some(3 * 3600)
        );
        assert!(
            d.trouble[0].message.contains("receipts 4 to 5"),
            "{:?}",
            d.trouble
        );
        let gate = crate::salemap::admission::Gauges {
            in_flight: 3,
            waiting: 7,
            refused_total: 41,
            limits: crate::salemap::admission::Limits::with_in_flight(4),
        };
        let text = metrics(&o, &gate);
        for line in [
            "salemap_in_flight_requests 3",
            "salemap_in_flight_limit 4",
            "salemap_waiting_requests 7",
            "salemap_busy_refusals_total 41",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(
            text.contains("salemap_lanes{status=\"old_hole\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "salemap_oldest_hole_age_seconds{lane=\"D-old-hole\",series=\"S\"} 10800"
            ),
            "{text}"
        );
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(words(42), "42 s");
        assert_eq!(words(3 * 60 + 5), "3 min");
        assert_eq!(words(7200), "2 h");
        assert_eq!(words(7500), "2 h 5 min");
        assert_eq!(words(86_400 * 3 + 5), "3 days");
    }
}
