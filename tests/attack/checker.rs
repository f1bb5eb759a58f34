//! The checker, in the spirit of Jepsen's total-queue checker: once the
//! faults have stopped and the backlog has drained, what the tills were
//! told, what the lane holds and what the back-end holds must agree
//! exactly. It counts every way they could disagree and prints the counts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use laned::salemap::Database;

use crate::tills::Acked;

/// A sale as the lane's database holds it.
#[derive(Debug, Clone)]
pub struct LaneSale {
    pub transaction_id: String,
    pub series: String,
    pub receipt_no: i64,
    pub state: String,
    pub doc_no: Option<String>,
}

/// A document as the back-end's database holds it.
#[derive(Debug, Clone)]
pub struct Document {
    pub transaction_id: String,
    pub lane_id: String,
    pub series: String,
    pub receipt_no: i64,
    pub doc_no: String,
}

/// The lane's sales, and its `PRAGMA integrity_check` together with the
/// checks that the figures the lane keeps for its status report equal a
/// full recount and that its fiscal journal verifies ("ok" when all hold).
pub fn lane(data_dir: &Path) -> (Vec<LaneSale>, String) {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join(laned::lane::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the lane database");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    let mut st = conn
        .prepare("SELECT transaction_id, series, receipt_no, state, doc_no FROM sales")
        .expect("prepare");
    let sales = st
        .query_map([], |r| {
            Ok(LaneSale {
                transaction_id: r.get(0)?,
                series: r.get(1)?,
                receipt_no: r.get(2)?,
                state: r.get(3)?,
                doc_no: r.get(4)?,
            })
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let db = laned::lane::store::ReadOnly::open(data_dir).expect("open the lane database");
    let mismatches = db.tally_mismatches().expect("recount the lane's figures");
    let integrity = if mismatches.is_empty() {
        integrity
    } else {
        format!("{integrity}; the kept figures differ from a recount: {mismatches:?}")
    };
    // The fiscal journal holds through every crash: every link and grand
    // total (the numbering is checked below, with the restore's jump).
    let journal = db.verify_journal().expect("verify the journal");
    let broken: Vec<String> = journal
        .series
        .iter()
        .filter_map(|(name, s)| s.broken.as_ref().map(|b| format!("{name}: {b:?}")))
        .chain(journal.unreadable.iter().map(|b| format!("{b:?}")))
        .collect();
    let integrity = if broken.is_empty() {
        integrity
    } else {
        format!(
            "{integrity}; the fiscal journal is broken: {}",
            broken.join("; ")
        )
    };
    (sales, integrity)
}

/// The back-end's documents, and its `PRAGMA integrity_check` on SQLite.
pub async fn backend(db: &Database) -> (Vec<Document>, Option<String>) {
    const Q: &str = "SELECT transaction_id, lane_id, series, receipt_no, doc_no FROM posted";
    match db {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("open salemap's database");
            let integrity: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check");
            let mut st = conn.prepare(Q).expect("prepare");
            let docs = st
                .query_map([], |r| {
                    Ok(Document {
                        transaction_id: r.get(0)?,
                        lane_id: r.get(1)?,
                        series: r.get(2)?,
                        receipt_no: r.get(3)?,
                        doc_no: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    })
                })
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            (docs, Some(integrity))
        }
        Database::Postgres { url, .. } => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(conn);
            let rows = client.query(Q, &[]).await.expect("query");
            let docs = rows
                .iter()
                .map(|r| Document {
                    transaction_id: r.get(0),
                    lane_id: r.get(1),
                    series: r.get(2),
                    receipt_no: r.get(3),
                    doc_no: r.get::<_, Option<String>>(4).unwrap_or_default(),
                })
                .collect();
            (docs, None)
        }
    }
}

/// What the checker found: the counts, and each violation.
#[derive(Debug, Default)]
pub struct Verdict {
    pub counts: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
}

impl Verdict {
    fn count(&mut self, what: &'static str, n: usize) {
        *self.counts.entry(what).or_default() += n;
    }

    fn violation(&mut self, what: &'static str, detail: String) {
        self.count(what, 1);
        if self.violations.len() < 20 {
            self.violations.push(format!("{what}: {detail}"));
        }
    }

    /// The counts, one per line.
    pub fn table(&self) -> String {
        self.counts
            .iter()
            .map(|(k, v)| format!("  {k:<40} {v}\n"))
            .collect()
    }
}

/// Whether `numbers` is exactly 1..n.
pub fn is_one_to_n(mut numbers: Vec<i64>) -> bool {
    numbers.sort_unstable();
    numbers.iter().enumerate().all(|(i, n)| *n == i as i64 + 1)
}

/// A lane whose database was replaced by an older backup during the run.
#[derive(Debug, Default)]
pub struct Restore {
    /// Acknowledged sales the backup does not hold: the restore took them
    /// off the lane, so they must be at the back-end (the scenario lets
    /// the backlog drain before the disk "dies").
    pub gone: HashSet<String>,
}

/// Every check, over what the tills were told (`acked`), the lane's
/// database and the back-end's, and the logs of every run. With a
/// `restore`, the lane's receipt numbers jump past the back-end's after the
/// acknowledgement, so on the lane they need only be distinct; at the
/// back-end they are still exactly 1..n.
pub fn check(
    acked: &[Acked],
    lane: &[LaneSale],
    docs: &[Document],
    integrity: &[(&str, &str)],
    logs: &[(&str, String)],
    restore: Option<&Restore>,
) -> Verdict {
    let gone = restore.map(|r| &r.gone);
    let is_gone = |id: &str| gone.is_some_and(|g| g.contains(id));
    let mut v = Verdict::default();
    // The counts that must be zero are there even when they are.
    for k in [
        "lost (told recorded, not on the lane)",
        "duplicated (told twice, or held twice)",
        "misnumbered (told another receipt number)",
        "unexpected on the lane",
        "unexpected at the back-end",
        "not posted",
        "receipt series not 1..n",
        "receipt number held twice at the back-end",
        "document series not 1..n",
        "document number differs lane / back-end",
        "integrity_check not ok",
        "panics in the logs",
    ] {
        v.count(k, 0);
    }
    v.count("acknowledged sales", acked.len());
    v.count("sales on the lane", lane.len());
    v.count("documents at the back-end", docs.len());
    if let Some(g) = gone {
        v.count(
            "taken off the lane by the restore (at the back-end)",
            g.len(),
        );
    }

    let on_lane: HashMap<&str, &LaneSale> = lane
        .iter()
        .map(|s| (s.transaction_id.as_str(), s))
        .collect();
    if on_lane.len() != lane.len() {
        v.violation(
            "duplicated (told twice, or held twice)",
            "the lane holds an id twice".into(),
        );
    }
    let mut told = HashSet::new();
    for a in acked {
        if !told.insert(a.transaction_id.as_str()) {
            v.violation(
                "duplicated (told twice, or held twice)",
                format!("{} acknowledged twice", a.transaction_id),
            );
        }
        match on_lane.get(a.transaction_id.as_str()) {
            None if is_gone(&a.transaction_id) => {}
            None => v.violation(
                "lost (told recorded, not on the lane)",
                format!(
                    "{} ({:?}, receipt {})",
                    a.transaction_id, a.style, a.receipt_no
                ),
            ),
            Some(s) if (s.series.as_str(), s.receipt_no) != (a.series.as_str(), a.receipt_no) => v
                .violation(
                    "misnumbered (told another receipt number)",
                    format!(
                        "{} told {}-{}, holds {}-{}",
                        a.transaction_id, a.series, a.receipt_no, s.series, s.receipt_no
                    ),
                ),
            Some(_) => {}
        }
    }
    let mut by_series: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for s in lane {
        by_series.entry(&s.series).or_default().push(s.receipt_no);
        if !told.contains(s.transaction_id.as_str()) {
            v.violation("unexpected on the lane", s.transaction_id.clone());
        }
        if s.state != "posted" {
            v.violation("not posted", format!("{} is {}", s.transaction_id, s.state));
        }
    }
    for (series, mut numbers) in by_series {
        let fine = if restore.is_some() {
            let n = numbers.len();
            numbers.sort_unstable();
            numbers.dedup();
            numbers.len() == n
        } else {
            is_one_to_n(numbers)
        };
        if !fine {
            v.violation("receipt series not 1..n", series.to_owned());
        }
    }

    let mut doc_series: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut receipts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut held = HashSet::new();
    for d in docs {
        if !held.insert(d.transaction_id.as_str()) {
            v.violation(
                "duplicated (told twice, or held twice)",
                format!("the back-end holds {} twice", d.transaction_id),
            );
        }
        let number = d
            .doc_no
            .rsplit_once('/')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(-1);
        doc_series.entry(&d.series).or_default().push(number);
        receipts.entry(&d.series).or_default().push(d.receipt_no);
        match on_lane.get(d.transaction_id.as_str()) {
            None if is_gone(&d.transaction_id) => {}
            None => v.violation("unexpected at the back-end", d.transaction_id.clone()),
            Some(s) => {
                if s.doc_no.as_deref() != Some(d.doc_no.as_str())
                    || s.receipt_no != d.receipt_no
                    || s.series != d.series
                {
                    v.violation(
                        "document number differs lane / back-end",
                        format!(
                            "{}: lane {:?}, back-end {} ({})",
                            d.transaction_id, s.doc_no, d.doc_no, d.lane_id
                        ),
                    );
                }
            }
        }
    }
    for s in lane {
        if !held.contains(s.transaction_id.as_str()) && s.state == "posted" {
            v.violation(
                "not posted",
                format!(
                    "{} is posted on the lane but not held by the back-end",
                    s.transaction_id
                ),
            );
        }
    }
    for (series, numbers) in doc_series {
        if !is_one_to_n(numbers) {
            v.violation("document series not 1..n", series.to_owned());
        }
    }
    for (series, mut numbers) in receipts {
        numbers.sort_unstable();
        for w in numbers.windows(2).filter(|w| w[0] == w[1]) {
            v.violation(
                "receipt number held twice at the back-end",
                format!("{series}-{}", w[0]),
            );
        }
        numbers.dedup();
        if !is_one_to_n(numbers) {
            v.violation(
                "receipt series not 1..n",
                format!("{series} at the back-end"),
            );
        }
    }
    if let Some(g) = gone {
        for id in g.iter().filter(|id| !held.contains(id.as_str())) {
            v.violation(
                "lost (told recorded, not on the lane)",
                format!("{id}: taken off the lane by the restore and not at the back-end"),
            );
        }
    }
    for (what, result) in integrity {
        if *result != "ok" {
            v.violation("integrity_check not ok", format!("{what}: {result}"));
        }
    }
    for (who, log) in logs {
        for line in log.lines().filter(|l| l.contains("panicked")) {
            v.violation("panics in the logs", format!("{who}: {line}"));
        }
    }
    v
}
