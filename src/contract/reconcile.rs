//! Reconciliation by document (docs/backend-contract.md §4.4): a lane's
//! documents of one business day against the list the back-end holds
//! (`GET {base}/v1/lanes/{lane}/days/{date}/documents`), by transaction
//! id, naming each document missing, extra or different on either side.

use std::collections::BTreeMap;

use serde::Serialize;

use super::HeldDocument;

/// One of the lane's documents of the day, as the lane holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneDocument {
    /// Its id.
    pub transaction_id: String,
    /// Its series.
    pub series: String,
    /// Its receipt number.
    pub receipt_no: i64,
    /// sale, return or void.
    pub kind: String,
    /// The SHA-256 of the exact bytes the lane sends.
    pub hash: String,
    /// pending, posted, stuck or resolved.
    pub state: String,
    /// The back-end's document number, once posted or resolved.
    pub doc_no: Option<String>,
}

/// What one named document shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// The back-end acknowledged it (posted here) and does not list it.
    MissingAtBackend,
    /// The back-end lists it and the lane does not hold it as posted:
    /// not recorded here, or recorded and not yet taken as posted (an
    /// answer lost; the next delivery replays it).
    ExtraAtBackend,
    /// Both hold it, with other bytes, number or kind.
    Differs,
    /// Settled by support here (resolved) and not listed by the back-end:
    /// the back-end's document is another one (`doc_no`).
    SettledBySupport,
    /// Pending or stuck here, so not at the back-end yet.
    NotDelivered,
}

impl Finding {
    /// Whether it makes the day not reconcile.
    pub fn is_difference(self) -> bool {
        matches!(
            self,
            Finding::MissingAtBackend | Finding::ExtraAtBackend | Finding::Differs
        )
    }
}

/// A document named by the comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// What it shows.
    pub finding: Finding,
    /// Its id.
    pub transaction_id: String,
    /// Its series (the lane's, else the back-end's).
    pub series: String,
    /// Its receipt number (the lane's, else the back-end's).
    pub receipt_no: i64,
    /// As the lane holds it.
    pub lane: Option<LaneDocument>,
    /// As the back-end lists it.
    pub backend: Option<HeldDocument>,
    /// What differs, for [`Finding::Differs`]: `hash`, `receipt_no`,
    /// `series`, `kind`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<&'static str>,
}

/// Compares the lane's documents of a day with the back-end's list: every
/// document that is not the same on both sides and posted, in order of
/// finding, then series and receipt number.
pub fn compare(lane: &[LaneDocument], backend: &[HeldDocument]) -> Vec<Named> {
    let mut theirs: BTreeMap<&str, &HeldDocument> = backend
        .iter()
        .map(|d| (d.transaction_id.as_str(), d))
        .collect();
    let mut out = Vec::new();
    for l in lane {
        let b = theirs.remove(l.transaction_id.as_str());
        let named = |finding, fields| Named {
            finding,
            transaction_id: l.transaction_id.clone(),
            series: l.series.clone(),
            receipt_no: l.receipt_no,
            lane: Some(l.clone()),
            backend: b.cloned(),
            fields,
        };
        match b {
            Some(b) => {
                let mut fields = Vec::new();
                if b.hash != l.hash {
                    fields.push("hash");
                }
                if b.series != l.series {
                    fields.push("series");
                }
                if b.receipt_no != l.receipt_no {
                    fields.push("receipt_no");
                }
                if b.kind != l.kind {
                    fields.push("kind");
                }
                if !fields.is_empty() {
                    out.push(named(Finding::Differs, fields));
                } else if l.state != "posted" && l.state != "resolved" {
                    out.push(named(Finding::ExtraAtBackend, vec![]));
                }
            }
            None => match l.state.as_str() {
                "posted" => out.push(named(Finding::MissingAtBackend, vec![])),
                "resolved" => out.push(named(Finding::SettledBySupport, vec![])),
                _ => out.push(named(Finding::NotDelivered, vec![])),
            },
        }
    }
    out.extend(theirs.into_values().map(|b| Named {
        finding: Finding::ExtraAtBackend,
        transaction_id: b.transaction_id.clone(),
        series: b.series.clone(),
        receipt_no: b.receipt_no,
        lane: None,
        backend: Some(b.clone()),
        fields: vec![],
    }));
    out.sort_by(|a, b| {
        (a.finding, &a.series, a.receipt_no, &a.transaction_id).cmp(&(
            b.finding,
            &b.series,
            b.receipt_no,
            &b.transaction_id,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(id: &str, no: i64, hash: &str, state: &str) -> LaneDocument {
        LaneDocument {
            transaction_id: id.into(),
            series: "L03".into(),
            receipt_no: no,
            kind: "sale".into(),
            hash: hash.into(),
            state: state.into(),
            doc_no: None,
        }
    }

    fn held(id: &str, no: i64, hash: &str) -> HeldDocument {
        HeldDocument {
            transaction_id: id.into(),
            series: "L03".into(),
            receipt_no: no,
            kind: "sale".into(),
            hash: hash.into(),
            doc_no: format!("L03/{no:08}"),
        }
    }

    #[test]
    fn each_document_that_is_not_the_same_and_posted_on_both_sides_is_named() {
        let ours = [
            lane("a", 1, "h1", "posted"),
            lane("b", 2, "h2", "posted"),
            lane("c", 3, "h3", "posted"),
            lane("d", 4, "h4", "pending"),
            lane("e", 5, "h5", "pending"),
            lane("f", 6, "h6", "resolved"),
            lane("g", 7, "h7", "stuck"),
        ];
        let theirs = [
            held("a", 1, "h1"),
            held("c", 3, "hX"),
            held("e", 5, "h5"),
            held("z", 9, "h9"),
        ];
        let found = compare(&ours, &theirs);
        let named: Vec<(Finding, &str, Vec<&str>)> = found
            .iter()
            .map(|n| (n.finding, n.transaction_id.as_str(), n.fields.clone()))
            .collect();
        assert_eq!(
            named,
            [
                (Finding::MissingAtBackend, "b", vec![]),
                (Finding::ExtraAtBackend, "e", vec![]),
                (Finding::ExtraAtBackend, "z", vec![]),
                (Finding::Differs, "c", vec!["hash"]),
                (Finding::SettledBySupport, "f", vec![]),
                (Finding::NotDelivered, "d", vec![]),
                (Finding::NotDelivered, "g", vec![]),
            ]
        );
        assert!(compare(&ours[..1], &theirs[..1]).is_empty());
    }
}
