//! Chains checked on intake (docs/backend-contract.md, "Chains"): each
//! document's `prev_hash` against the documents of its lane and series
//! that salemap holds, and its grand total against its predecessor's.
//!
//! The stores gather [`Facts`] about every new document of a request while
//! they hold the series (SQLite's one writer; PostgreSQL's lock per
//! series), and [`judge`] decides, in request order, which documents take
//! their place in the chain and which are refused: the documents of one
//! request see the ones before them. Nothing here touches a database.

use std::collections::{BTreeMap, HashMap};

use crate::contract::ack::Number;
use crate::contract::journal::{GENESIS, after};

/// One document's place in its chain, as the store will keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its id.
    pub transaction_id: String,
    /// The lane.
    pub lane_id: String,
    /// The series.
    pub series: String,
    /// Its place in lane order.
    pub lane_seq: i64,
    /// Its receipt or closing number.
    pub number: Number,
    /// The SHA-256 of its bytes.
    pub hash: String,
    /// Its `prev_hash`; `None` for a document from before the journal.
    pub prev_hash: Option<String>,
    /// Its `grand_total`.
    pub grand_total: Option<BTreeMap<String, i64>>,
    /// Its currency (`None` for a closing).
    pub currency: Option<String>,
    /// What it does to the grand total (`None`: not known, a void of a
    /// document salemap does not hold).
    pub effect: Option<i64>,
}

/// A held document of the same lane and series, as far as a check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub transaction_id: String,
    /// Its hash.
    pub hash: String,
    /// Its place in lane order.
    pub lane_seq: i64,
    /// Its grand total (`None` from before the journal).
    pub grand_total: Option<BTreeMap<String, i64>>,
    /// Its currency (`None` for a closing).
    pub currency: Option<String>,
    /// Its effect, when known.
    pub effect: Option<i64>,
}

/// What the store found about one new document.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The id is already held: a repeat, which the gate answers.
    pub held: bool,
    /// The held document whose hash is the document's `prev_hash`: the
    /// one before it in lane order, if its hash is that.
    pub predecessor: Option<Held>,
    /// Held documents (other ids) that name the same `prev_hash`.
    pub siblings: Vec<String>,
    /// Held documents whose `prev_hash` is this document's hash (they
    /// arrived before it).
    pub successors: Vec<Held>,
    /// The highest number of the document's kind (receipt or closing)
    /// held in the lane and series.
    pub highest: Option<i64>,
}

/// Why a document does not fit its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `chain_conflict`: its `prev_hash` contradicts a held document.
    Conflict {
        /// The held document it contradicts.
        holder: String,
        /// How, in a sentence's words.
        reason: ConflictReason,
    },
    /// `grand_total_mismatch`.
    GrandTotal {
        /// What the predecessor's total and the document's effect give.
        expected: BTreeMap<String, i64>,
        /// What the document carries.
        found: BTreeMap<String, i64>,
    },
}

/// How a document contradicts the chain salemap holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictReason {
    /// Another held document follows the same predecessor and the number
    /// is not above every number held: the lane's history forked (a lane
    /// restored or cloned from a copy).
    Forked,
    /// The predecessor it names comes at or after it in lane order.
    OutOfLaneOrder,
}

/// What becomes of one new document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A repeat of a held id: the gate answers it; no link is kept.
    Repeat,
    /// It takes its place: keep `link` (if it wins the gate).
    Accept {
        /// What to keep.
        link: Link,
        /// Its predecessor was not held when it arrived.
        out_of_order: bool,
        /// It branches off a predecessor that another held document
        /// follows, above every number held: a lane restored from an old
        /// copy whose operator acknowledged it and which numbers on above
        /// head office's numbers. Kept, and shown to head office.
        forked: bool,
        /// Held documents that arrived before it and whose grand totals
        /// do not follow from it: (the document, what is wrong).
        successor_problems: Vec<(Held, String)>,
    },
    /// Refused; nothing of it is kept.
    Refuse(Refusal),
}

/// The grand total a document must carry after `before`.
fn expected(
    before: &BTreeMap<String, i64>,
    currency: Option<&str>,
    effect: i64,
) -> BTreeMap<String, i64> {
    match currency {
        Some(c) => after(before, c, effect),
        None => before.clone(),
    }
}

/// Decides, in order, what becomes of each new document of one request;
/// `facts[i]` belongs to `links[i]`. A document sees the accepted ones
/// before it in the request as held.
pub fn judge(links: &[Link], facts: &[Facts]) -> Vec<Verdict> {
    // Documents of this request accepted so far, by hash, and the numbers
    // and predecessors they take.
    let mut by_hash: HashMap<(&str, &str, &str), &Link> = HashMap::new();
    let mut followed: HashMap<(&str, &str, &str), &str> = HashMap::new();
    let mut highest: HashMap<(&str, &str, bool), i64> = HashMap::new();
    // Ids accepted earlier in the request: a second copy of one (a batch
    // that holds a sale twice) is a repeat, which the gate answers.
    let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(links.len());
    for (link, f) in links.iter().zip(facts) {
        if f.held || ids.contains(link.transaction_id.as_str()) {
            out.push(Verdict::Repeat);
            continue;
        }
        let is_closing = matches!(link.number, Number::Closing(_));
        let number = match link.number {
            Number::Receipt(n) | Number::Closing(n) => n,
        };
        let top_key = (link.lane_id.as_str(), link.series.as_str(), is_closing);
        let top = highest.get(&top_key).copied().max(f.highest).unwrap_or(0);
        let verdict = match &link.prev_hash {
            None => Verdict::Accept {
                link: link.clone(),
                out_of_order: false,
                forked: false,
                successor_problems: vec![],
            },
            Some(prev) => judge_one(link, f, prev, top, number, &by_hash, &followed),
        };
        if matches!(verdict, Verdict::Accept { .. }) {
            ids.insert(&link.transaction_id);
            by_hash.insert((&link.lane_id, &link.series, &link.hash), link);
            if let Some(p) = &link.prev_hash {
                followed.insert((&link.lane_id, &link.series, p), &link.transaction_id);
            }
            let t = highest.entry(top_key).or_insert(0);
            *t = (*t).max(number).max(f.highest.unwrap_or(0));
        }
        out.push(verdict);
    }
    out
}

fn judge_one(
    link: &Link,
    f: &Facts,
    prev: &str,
    top: i64,
    number: i64,
    by_hash: &HashMap<(&str, &str, &str), &Link>,
    followed: &HashMap<(&str, &str, &str), &str>,
) -> Verdict {
    let key = (link.lane_id.as_str(), link.series.as_str(), prev);
    // Another document already follows the same predecessor.
    let sibling = f
        .siblings
        .first()
        .map(String::as_str)
        .or_else(|| followed.get(&key).copied());
    let forked = match sibling {
        Some(holder) if number <= top => {
            return Verdict::Refuse(Refusal::Conflict {
                holder: holder.to_owned(),
                reason: ConflictReason::Forked,
            });
        }
        Some(_) => true,
        None => false,
    };
    // Its predecessor: in this request, held, or the start of the series.
    let genesis = Held {
        transaction_id: String::new(),
        hash: GENESIS.into(),
        lane_seq: 0,
        grand_total: Some(BTreeMap::new()),
        currency: None,
        effect: Some(0),
    };
    let in_request = by_hash.get(&key).map(|l| Held {
        transaction_id: l.transaction_id.clone(),
        hash: l.hash.clone(),
        lane_seq: l.lane_seq,
        grand_total: l.grand_total.clone(),
        currency: l.currency.clone(),
        effect: l.effect,
    });
    let predecessor = in_request
        .or_else(|| f.predecessor.clone())
        .or_else(|| (prev == GENESIS).then_some(genesis));
    let mut out_of_order = true;
    if let Some(p) = &predecessor {
        out_of_order = false;
        if p.lane_seq >= link.lane_seq {
            return Verdict::Refuse(Refusal::Conflict {
                holder: p.transaction_id.clone(),
                reason: ConflictReason::OutOfLaneOrder,
            });
        }
        if let (Some(before), Some(effect), Some(found)) =
            (&p.grand_total, link.effect, &link.grand_total)
        {
            let want = expected(before, link.currency.as_deref(), effect);
            if want != *found {
                return Verdict::Refuse(Refusal::GrandTotal {
                    expected: want,
                    found: found.clone(),
                });
            }
        }
    }
    // Documents that arrived before it and link to it.
    let successor_problems = f
        .successors
        .iter()
        .filter_map(|s| {
            if s.lane_seq <= link.lane_seq {
                return Some((
                    s.clone(),
                    format!(
                        "it links to document {} that comes at or after it in lane order",
                        link.transaction_id
                    ),
                ));
            }
            let (Some(before), Some(effect), Some(found)) =
                (&link.grand_total, s.effect, &s.grand_total)
            else {
                return None;
            };
            let want = expected(before, s.currency.as_deref(), effect);
            (want != *found).then(|| {
                (
                    s.clone(),
                    format!(
                        "its grand total {} is not {} (its predecessor {}'s plus its own effect)",
                        json(found),
                        json(&want),
                        link.transaction_id
                    ),
                )
            })
        })
        .collect();
    Verdict::Accept {
        link: link.clone(),
        out_of_order,
        forked,
        successor_problems,
    }
}

/// How many documents one request moves a series' proven head at most
/// (a database upgraded with a long history catches up over a few
/// requests instead of in one).
pub const MAX_WALK: usize = 10_000;

/// One step of the proven head: the next document after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its id.
    pub transaction_id: String,
    /// Its hash.
    pub hash: String,
    /// Its place in lane order.
    pub lane_seq: i64,
    /// It is a closing (the head reaching it certifies its day).
    pub closing: bool,
}

impl Step {
    /// The step onto `l`.
    pub fn of(l: &Link) -> Step {
        Step {
            transaction_id: l.transaction_id.clone(),
            hash: l.hash.clone(),
            lane_seq: l.lane_seq,
            closing: matches!(l.number, Number::Closing(_)),
        }
    }
}

/// The document of `kept` (what a request just added, forks left out)
/// that follows `hash` in `lane`'s `series`.
pub fn next_kept<'a>(
    kept: &'a [(Link, bool)],
    lane: &str,
    series: &str,
    hash: &str,
) -> Option<&'a Link> {
    kept.iter()
        .find(|(l, forked)| {
            !forked
                && l.lane_id == lane
                && l.series == series
                && l.prev_hash.as_deref() == Some(hash)
        })
        .map(|(l, _)| l)
}

/// The series (lane, series) a request's kept documents may move the head
/// of: those with a document that follows `head` (64 zeros when none).
pub fn touched(kept: &[(Link, bool)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = kept
        .iter()
        .filter(|(l, forked)| !forked && l.prev_hash.is_some())
        .map(|(l, _)| (l.lane_id.clone(), l.series.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A grand total as JSON, for messages and the store.
pub fn json(total: &BTreeMap<String, i64>) -> String {
    serde_json::to_string(total).unwrap_or_default()
}

/// A stored grand total (`None` when absent or unreadable).
pub fn parse_total(text: Option<&str>) -> Option<BTreeMap<String, i64>> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, seq: i64, no: i64, hash: &str, prev: &str, total: i64) -> Link {
        Link {
            transaction_id: id.into(),
            lane_id: "L03".into(),
            series: "L03".into(),
            lane_seq: seq,
            number: Number::Receipt(no),
            hash: hash.into(),
            prev_hash: Some(prev.into()),
            grand_total: Some(BTreeMap::from([("KES".into(), total)])),
            currency: Some("KES".into()),
            effect: Some(100),
        }
    }

    fn held(l: &Link) -> Held {
        Held {
            transaction_id: l.transaction_id.clone(),
            hash: l.hash.clone(),
            lane_seq: l.lane_seq,
            grand_total: l.grand_total.clone(),
            currency: l.currency.clone(),
            effect: l.effect,
        }
    }

    fn accepted(v: &Verdict) -> (bool, bool) {
        match v {
            Verdict::Accept {
                out_of_order,
                forked,
                ..
            } => (*out_of_order, *forked),
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn a_request_links_to_itself_and_to_what_is_held() {
        let a = link("a", 1, 1, "ha", GENESIS, 100);
        let b = link("b", 2, 2, "hb", "ha", 200);
        let c = link("c", 3, 3, "hc", "hb", 300);
        let v = judge(
            &[a.clone(), b.clone()],
            &[Facts::default(), Facts::default()],
        );
        assert_eq!(accepted(&v[0]), (false, false));
        assert_eq!(accepted(&v[1]), (false, false));
        // c arrives alone later, its predecessor held.
        let f = Facts {
            predecessor: Some(held(&b)),
            highest: Some(2),
            ..Facts::default()
        };
        assert_eq!(
            accepted(&judge(std::slice::from_ref(&c), &[f])[0]),
            (false, false)
        );
        // Out of order: c before b.
        let f = Facts {
            highest: Some(1),
            ..Facts::default()
        };
        assert_eq!(accepted(&judge(&[c], &[f])[0]), (true, false));
    }

    #[test]
    fn a_fork_is_refused_unless_it_numbers_above_everything_held() {
        let b = link("b", 2, 2, "hb", "ha", 200);
        let forked = link("b2", 2, 2, "hb2", "ha", 200);
        let f = Facts {
            siblings: vec!["b".into()],
            highest: Some(5),
            ..Facts::default()
        };
        assert_eq!(
            judge(std::slice::from_ref(&forked), std::slice::from_ref(&f))[0],
            Verdict::Refuse(Refusal::Conflict {
                holder: "b".into(),
                reason: ConflictReason::Forked
            })
        );
        // The acknowledged restore numbers on above head office's 5.
        let mut above = forked;
        above.number = Number::Receipt(6);
        assert_eq!(accepted(&judge(&[above], &[f])[0]), (true, true));
        // Two documents of one request after the same predecessor, the
        // second not numbered above the first.
        let twin = link("b3", 3, 2, "hb3", "ha", 200);
        let v = judge(&[b, twin], &[Facts::default(), Facts::default()]);
        assert!(matches!(
            v[1],
            Verdict::Refuse(Refusal::Conflict {
                reason: ConflictReason::Forked,
                ..
            })
        ));
    }

    #[test]
    fn a_wrong_grand_total_or_lane_order_is_refused_and_a_late_link_is_checked() {
        let a = link("a", 1, 1, "ha", GENESIS, 100);
        let bad = link("b", 2, 2, "hb", "ha", 250);
        let f = Facts {
            predecessor: Some(held(&a)),
            ..Facts::default()
        };
        assert_eq!(
            judge(&[bad], std::slice::from_ref(&f))[0],
            Verdict::Refuse(Refusal::GrandTotal {
                expected: BTreeMap::from([("KES".into(), 200)]),
                found: BTreeMap::from([("KES".into(), 250)]),
            })
        );
        let early = link("b", 1, 2, "hb", "ha", 200);
        assert!(matches!(
            judge(&[early], &[f])[0],
            Verdict::Refuse(Refusal::Conflict {
                reason: ConflictReason::OutOfLaneOrder,
                ..
            })
        ));
        // a arrives after b, and b's total does not follow from a's.
        let b = link("b", 2, 2, "hb", "ha", 999);
        let f = Facts {
            successors: vec![held(&b)],
            ..Facts::default()
        };
        match &judge(&[a], &[f])[0] {
            Verdict::Accept {
                successor_problems, ..
            } => {
                assert_eq!(successor_problems.len(), 1);
                assert_eq!(successor_problems[0].0.transaction_id, "b");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_repeat_is_left_to_the_gate() {
        let a = link("a", 1, 1, "ha", GENESIS, 5);
        let f = Facts {
            held: true,
            ..Facts::default()
        };
        assert_eq!(judge(&[a], &[f]), [Verdict::Repeat]);
    }

    /// A batch that holds one document twice (found by the seeded test of
    /// head office's holes): the second copy is a repeat, not a fork.
    #[test]
    fn a_document_twice_in_one_request_is_a_repeat_the_second_time() {
        let a = link("a", 1, 1, "ha", GENESIS, 100);
        let verdicts = judge(&[a.clone(), a], &[Facts::default(), Facts::default()]);
        assert!(
            matches!(verdicts[0], Verdict::Accept { .. }),
            "{verdicts:?}"
        );
        assert_eq!(verdicts[1], Verdict::Repeat);
    }
}
