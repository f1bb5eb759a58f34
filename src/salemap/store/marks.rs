//! Watermarks and holes (docs/backend-contract.md, "What head office
//! sees"): per lane and series, the highest receipt number up to which
//! every number is held, and the ranges of numbers missing above it.
//!
//! The stores keep them on intake, in the posting transaction: [`plan`]
//! works out, from the numbers a request adds and the holes they fall in,
//! which hole rows go and which are written; nothing here touches a
//! database. Reading them is one row per series, whatever the map holds.

use std::collections::{BTreeMap, BTreeSet};

use super::chain::Link;
use crate::contract::ack::Number;

/// Receipt numbers `first_no..=last_no` of one series not held, missing
/// since `opened_at` (when a higher number arrived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// The first number missing.
    pub first_no: i64,
    /// The last number missing.
    pub last_no: i64,
    /// When salemap first saw them missing (RFC 3339).
    pub opened_at: String,
}

impl Hole {
    /// How many numbers it spans (at least one).
    pub fn numbers(&self) -> i64 {
        self.last_no - self.first_no + 1
    }
}

/// What a request does to one series' holes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The highest receipt number held after it.
    pub highest: i64,
    /// Numbers below `highest` not held after it.
    pub missing: i64,
    /// Held hole rows to delete, by `first_no`.
    pub remove: Vec<i64>,
    /// Hole rows to write (after the deletes): new holes and what is left
    /// of the ones numbers fell in.
    pub write: Vec<Hole>,
}

/// Applies newly held receipt `numbers` of one series to its marks:
/// `highest` and `missing` as stored, `find(n)` the stored hole with the
/// greatest `first_no <= n` (the only one that can hold `n`), `at` the
/// time of the request.
pub fn plan<E>(
    highest: i64,
    missing: i64,
    numbers: &[i64],
    at: &str,
    mut find: impl FnMut(i64) -> Result<Option<Hole>, E>,
) -> Result<Plan, E> {
    let numbers: BTreeSet<i64> = numbers.iter().copied().filter(|n| *n > 0).collect();
    let mut p = Plan {
        highest,
        missing,
        ..Plan::default()
    };
    // Holes as they stand after the numbers so far, by first_no: new
    // ones, and stored ones that were read (and will be rewritten).
    let mut open: BTreeMap<i64, Hole> = BTreeMap::new();
    let mut read: BTreeSet<i64> = BTreeSet::new();
    for n in numbers {
        if n > p.highest {
            if n > p.highest + 1 {
                let h = Hole {
                    first_no: p.highest + 1,
                    last_no: n - 1,
                    opened_at: at.to_owned(),
                };
                p.missing += h.numbers();
                open.insert(h.first_no, h);
            }
            p.highest = n;
            continue;
        }
        let in_memory = open
            .range(..=n)
            .next_back()
            .filter(|(_, h)| h.last_no >= n)
            .map(|(k, _)| *k);
        let first = match in_memory {
            Some(k) => Some(k),
            None => match find(n)? {
                // Read before: its pieces are in `open`, and none holds n.
                Some(h) if read.contains(&h.first_no) => None,
                Some(h) if h.last_no >= n && h.first_no <= n => {
                    read.insert(h.first_no);
                    p.remove.push(h.first_no);
                    let k = h.first_no;
                    open.insert(k, h);
                    Some(k)
                }
                // Held already (a repeat of a number voided and posted
                // again): nothing changes.
                _ => None,
            },
        };
        let Some(k) = first else { continue };
        let Some(h) = open.remove(&k) else { continue };
        p.missing -= 1;
        if h.first_no < n {
            open.insert(
                h.first_no,
                Hole {
                    last_no: n - 1,
                    ..h.clone()
                },
            );
        }
        if n < h.last_no {
            open.insert(
                n + 1,
                Hole {
                    first_no: n + 1,
                    ..h
                },
            );
        }
    }
    p.write = open.into_values().collect();
    Ok(p)
}

/// The receipt numbers and closings newly held per lane and series, from
/// the links a request kept.
#[derive(Debug, Default)]
pub struct Added {
    /// Receipt numbers.
    pub receipts: Vec<i64>,
    /// Closings.
    pub closings: i64,
}

/// Groups the kept links of a request by lane and series.
pub fn added<'a>(kept: impl IntoIterator<Item = &'a Link>) -> BTreeMap<(String, String), Added> {
    let mut out: BTreeMap<(String, String), Added> = BTreeMap::new();
    for l in kept {
        let a = out
            .entry((l.lane_id.clone(), l.series.clone()))
            .or_default();
        match l.number {
            Number::Receipt(n) => a.receipts.push(n),
            Number::Closing(_) => a.closings += 1,
        }
    }
    out
}

/// A document refused because it contradicts what salemap holds, as
/// recorded for head office.
#[derive(Debug, Clone)]
pub struct Refused<'a> {
    /// Its place in the chain it claimed.
    pub link: &'a Link,
    /// The answer's code.
    pub code: &'static str,
    /// The held document it contradicts.
    pub holder: Option<&'a str>,
}

/// The documents of a request refused as a forked lane: `chain_conflict`,
/// `grand_total_mismatch` and `receipt_no_conflict`.
pub fn refused<'a>(links: &'a [Link], outcomes: &'a [super::Outcome]) -> Vec<Refused<'a>> {
    use super::Outcome;
    links
        .iter()
        .zip(outcomes)
        .filter_map(|(link, o)| {
            let (code, holder) = match o {
                Outcome::ChainConflict { holder, .. } => (
                    crate::contract::codes::CHAIN_CONFLICT,
                    Some(holder.as_str()),
                ),
                Outcome::ReceiptConflict { holder } => (
                    crate::contract::codes::RECEIPT_NO_CONFLICT,
                    Some(holder.as_str()),
                ),
                Outcome::GrandTotalMismatch { .. } => {
                    (crate::contract::codes::GRAND_TOTAL_MISMATCH, None)
                }
                _ => return None,
            };
            Some(Refused { link, code, holder })
        })
        .collect()
}

/// `numbered_by` and the number of a link, as the tables keep them.
pub fn numbered(l: &Link) -> (&'static str, i64) {
    match l.number {
        Number::Receipt(n) => ("receipt", n),
        Number::Closing(n) => ("closing", n),
    }
}

/// What salemap holds of one lane and series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesMarks {
    /// The series.
    pub series: String,
    /// Every receipt number 1..watermark is held.
    pub watermark: i64,
    /// The highest receipt number held.
    pub highest: i64,
    /// Numbers below `highest` not held.
    pub missing: i64,
    /// The lowest hole, which is also the oldest.
    pub oldest_hole: Option<Hole>,
    /// Closings held.
    pub closings: i64,
    /// Closings certified.
    pub certified: i64,
    /// The last closing certified: its number and business date.
    pub last_certified: Option<(i64, String)>,
    /// The first closing held that is not certified.
    pub oldest_uncertified: Option<Uncertified>,
    /// Documents refused as a forked lane.
    pub conflicts: i64,
    /// When the last of them was refused.
    pub last_conflict_at: Option<String>,
}

/// A closing held whose day is not certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncertified {
    /// Its number.
    pub closing_no: i64,
    /// The day it closes.
    pub business_date: String,
    /// When salemap got it.
    pub posted_at: String,
}

/// What salemap holds of one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneMarks {
    /// The lane.
    pub lane_id: String,
    /// Its last heartbeat.
    pub last_heartbeat: Option<String>,
    /// The last time it posted.
    pub last_posted: Option<String>,
    /// Its series.
    pub series: Vec<SeriesMarks>,
}

/// A refused document as recorded (and as `GET /v1/lanes/{lane}` shows it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// Its id.
    pub transaction_id: String,
    /// Its series.
    pub series: String,
    /// `receipt` or `closing`.
    pub numbered_by: String,
    /// Its number.
    pub number: i64,
    /// Its hash.
    pub hash: String,
    /// The answer's code.
    pub code: String,
    /// The held document it contradicts.
    pub holder: Option<String>,
    /// When it was first refused.
    pub first_seen: String,
    /// When it was last refused.
    pub last_seen: String,
    /// How many times it was sent.
    pub attempts: i64,
}

/// One lane in full: its marks, its holes and its refused documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneDetail {
    /// Its marks.
    pub marks: LaneMarks,
    /// Its holes, series by series, lowest first (at most [`DETAIL_ROWS`]).
    pub holes: Vec<(String, Hole)>,
    /// Its refused documents, latest first (at most [`DETAIL_ROWS`]).
    pub conflicts: Vec<Conflict>,
}

/// Most holes and refused documents one lane's detail lists.
pub const DETAIL_ROWS: i64 = 200;

/// The lane ids to read, as a range of the index: one lane, or every
/// lane (lane ids are letters, digits, `-` and `_`, all below `~`).
pub fn lanes_between(lane: Option<&str>) -> (&str, &str) {
    match lane {
        Some(l) => (l, l),
        None => ("", "~"),
    }
}

/// Puts each lane's series under it, lanes by id: `lanes` as (lane,
/// last heartbeat, last posted), `series` as (lane, marks).
pub fn assemble(
    lanes: Vec<(String, Option<String>, Option<String>)>,
    series: Vec<(String, SeriesMarks)>,
) -> Vec<LaneMarks> {
    let mut by_lane: BTreeMap<String, LaneMarks> = lanes
        .into_iter()
        .map(|(lane_id, last_heartbeat, last_posted)| {
            (
                lane_id.clone(),
                LaneMarks {
                    lane_id,
                    last_heartbeat,
                    last_posted,
                    series: Vec::new(),
                },
            )
        })
        .collect();
    for (lane_id, m) in series {
        by_lane
            .entry(lane_id.clone())
            .or_insert_with(|| LaneMarks {
                lane_id,
                last_heartbeat: None,
                last_posted: None,
                series: Vec::new(),
            })
            .series
            .push(m);
    }
    by_lane.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use std::convert::Infallible;

    /// Applies a plan to a model of the stored holes.
    fn apply(stored: &mut BTreeMap<i64, Hole>, p: &Plan) {
        for k in &p.remove {
            stored.remove(k);
        }
        for h in &p.write {
            stored.insert(h.first_no, h.clone());
        }
    }

    fn find(stored: &BTreeMap<i64, Hole>) -> impl FnMut(i64) -> Result<Option<Hole>, Infallible> {
        move |n| Ok(stored.range(..=n).next_back().map(|(_, h)| h.clone()))
    }

    #[test]
    fn a_number_past_the_end_opens_a_hole_and_its_arrival_closes_it() {
        let mut stored = BTreeMap::new();
        let p = plan(0, 0, &[1, 2, 5], "t1", find(&stored)).unwrap();
        assert_eq!((p.highest, p.missing), (5, 2));
        apply(&mut stored, &p);
        assert_eq!(
            stored.values().collect::<Vec<_>>(),
            [&Hole {
                first_no: 3,
                last_no: 4,
                opened_at: "t1".into()
            }]
        );
        let p = plan(5, 2, &[4], "t2", find(&stored)).unwrap();
        apply(&mut stored, &p);
        // What is left keeps the time it opened.
        assert_eq!(
            stored.values().collect::<Vec<_>>(),
            [&Hole {
                first_no: 3,
                last_no: 3,
                opened_at: "t1".into()
            }]
        );
        let p = plan(5, 1, &[3], "t3", find(&stored)).unwrap();
        apply(&mut stored, &p);
        assert!(stored.is_empty());
        assert_eq!((p.highest, p.missing), (5, 0));
    }

    /// Numbers arrive in a seeded random order, in random requests, some
    /// repeated: the holes always match the numbers not yet held.
    #[test]
    fn holes_are_exactly_the_numbers_not_held_in_any_order_of_arrival() {
        let seed: u64 = std::env::var("LANED_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        eprintln!("seed {seed} (LANED_SEED={seed} repeats this run)");
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        for round in 0..200 {
            let n = rng.random_range(1..60);
            let mut order: Vec<i64> = (1..=n).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let mut stored = BTreeMap::new();
            let (mut highest, mut missing) = (0, 0);
            let mut held = BTreeSet::new();
            let mut rest = &order[..];
            while !rest.is_empty() {
                let take = rng.random_range(1..=rest.len().min(7));
                let (now, later) = rest.split_at(take);
                let mut request = now.to_vec();
                if rng.random_bool(0.3)
                    && let Some(h) = held.iter().next().copied()
                {
                    request.push(h);
                }
                let p = plan(highest, missing, &request, "t", find(&stored)).unwrap();
                apply(&mut stored, &p);
                (highest, missing) = (p.highest, p.missing);
                held.extend(now.iter().copied());
                let top = held.iter().next_back().copied().unwrap_or(0);
                let not_held: BTreeSet<i64> = (1..=top).filter(|k| !held.contains(k)).collect();
                let in_holes: BTreeSet<i64> = stored
                    .values()
                    .flat_map(|h| h.first_no..=h.last_no)
                    .collect();
                assert_eq!(in_holes, not_held, "seed {seed} round {round}");
                assert_eq!(highest, top, "seed {seed} round {round}");
                assert_eq!(missing, not_held.len() as i64, "seed {seed} round {round}");
                // Ranges are maximal: no two touch.
                for (a, b) in stored.values().zip(stored.values().skip(1)) {
                    assert!(a.last_no + 1 < b.first_no, "seed {seed} round {round}");
                }
                rest = later;
            }
            assert!(stored.is_empty());
        }
    }
}
