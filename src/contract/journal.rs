//! The fiscal journal's format (docs/journal.md), shared by whoever writes
//! it (the lane) and whoever checks it (`laned verify`, later the back-end):
//! per series, every document carries `prev_hash`, the SHA-256 of the
//! previous document's exact bytes, and `grand_total`, the series'
//! cumulative net per currency after it. A changed, missing or reordered
//! document breaks a link or a total that anyone holding the bytes can
//! recompute.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use smallvec::SmallVec;
use uuid::Uuid;

use super::Kind;
use super::closing::{
    Breakdown, Closing, ClosingKind, Figures, SaleDoc, Text, add, first_difference,
};
use crate::common::hash::{Sha256Digest as Digest, from_hex, sha256, to_hex};

/// The `prev_hash` of a series' first document.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A document's hash: the lowercase hex SHA-256 of its exact bytes.
pub fn hash(bytes: &[u8]) -> String {
    crate::common::hash::sha256_hex(bytes)
}

/// A series' running state: the hash of its last document and its grand
/// total, and what a later void needs of the documents before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The hash of the last document (`None`: the series has none yet).
    pub last_hash: Option<String>,
    /// The cumulative net per currency, minor units.
    pub grand_total: BTreeMap<String, i64>,
}

impl Head {
    /// The `prev_hash` the next document carries.
    pub fn next_prev_hash(&self) -> &str {
        self.last_hash.as_deref().unwrap_or(GENESIS)
    }
}

/// What a document does to its series' grand total, in its currency: a
/// sale adds its total, a return subtracts it, a void subtracts the signed
/// total of the document it voids (`voided`: that document's own effect,
/// when it is in this series before the void; a void of a document outside
/// the series changes nothing here).
pub fn effect(kind: Kind, total: i64, voided: Option<i64>) -> i64 {
    match kind {
        Kind::Sale => total,
        Kind::Return => total.saturating_neg(),
        Kind::Void => voided.map_or(0, i64::saturating_neg),
    }
}

/// The grand total after a document with this `effect` in `currency`:
/// every currency seen in the series so far stays listed.
pub fn after(total: &BTreeMap<String, i64>, currency: &str, effect: i64) -> BTreeMap<String, i64> {
    let mut t = total.clone();
    add(&mut t, currency, effect);
    t
}

/// The grand total a document must carry after `total`: with `change`
/// (currency, effect) applied, or unchanged (a closing).
fn expected_total(
    total: &BTreeMap<String, i64>,
    change: Option<(&str, i64)>,
) -> BTreeMap<String, i64> {
    match change {
        Some((currency, effect)) => after(total, currency, effect),
        None => total.clone(),
    }
}

/// What verification reads of a document: its envelope's fields, and the
/// sale of a sale, return or void, or the figures of a closing. Read on
/// the worker threads into inline strings and small vectors: nothing is
/// allocated for a usual document (and nothing freed on another thread).
#[derive(Debug, Deserialize)]
struct Fields {
    transaction_id: Uuid,
    series: Text,
    #[serde(default)]
    kind: Option<ClosingKind>,
    #[serde(default)]
    receipt_no: Option<i64>,
    #[serde(default)]
    closing_no: Option<i64>,
    #[serde(default)]
    prev_hash: Option<Link>,
    #[serde(default)]
    grand_total: Option<Totals>,
    #[serde(default)]
    sale: Option<SaleDoc>,
    #[serde(default)]
    closing: Option<Box<Closing>>,
}

/// A document's `prev_hash`: 64 lowercase hex digits, kept as the 32
/// bytes, or anything else, kept as written to be named.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Link {
    Hash(Digest),
    Other(Box<str>),
}

impl Link {
    fn text(&self) -> String {
        match self {
            Link::Hash(d) => to_hex(d),
            Link::Other(t) => t.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Link, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Link;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hash as text")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Link, E> {
                Ok(from_hex(v).map_or_else(|| Link::Other(v.into()), Link::Hash))
            }
        }
        d.deserialize_str(V)
    }
}

/// A document's `grand_total` as written: per currency, in its order.
#[derive(Debug, Default)]
struct Totals(SmallVec<[(Text, i64); 2]>);

impl<'de> Deserialize<'de> for Totals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Totals, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Totals;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an amount per currency")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Totals, A::Error> {
                let mut t = Totals::default();
                while let Some(e) = m.next_entry::<Text, i64>()? {
                    t.0.push(e);
                }
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

impl Totals {
    /// As a map (a currency written twice: the last one, as any JSON
    /// reader takes it).
    fn to_map(&self) -> BTreeMap<String, i64> {
        self.0.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Whether these are `total` with `effect` added in `currency`
    /// (`None`: unchanged), as [`after`] gives it; compared in place for
    /// the usual document, whose currency is already in the total.
    fn check(
        &self,
        total: &BTreeMap<String, i64>,
        change: Option<(&str, i64)>,
    ) -> Result<(), Break> {
        let (currency, effect) = change.unwrap_or_default();
        let known = change.is_none() || total.contains_key(currency);
        let same = known
            && self.0.len() == total.len()
            && self.0.iter().zip(total).all(|((ck, cv), (k, v))| {
                let v = if change.is_some() && k == currency {
                    v.saturating_add(effect)
                } else {
                    *v
                };
                ck == k && *cv == v
            });
        if same {
            return Ok(());
        }
        let expected = expected_total(total, change);
        let found = self.to_map();
        if found == expected {
            Ok(())
        } else {
            Err(Break::GrandTotal { found, expected })
        }
    }
}

/// Why a document breaks its series' journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// Its bytes are not a document.
    #[error("its bytes are not a readable document: {0}")]
    Unreadable(String),
    /// Its receipt number is not the next one.
    #[error("its receipt number is {found}, but the series' next is {expected}")]
    Numbering {
        /// The number it carries.
        found: i64,
        /// The number that follows the document before it.
        expected: i64,
    },
    /// Its closing number is not the next one.
    #[error("its closing number is {found}, but the series' next is {expected}")]
    ClosingNumbering {
        /// The number it carries.
        found: i64,
        /// The number that follows the series' last closing.
        expected: i64,
    },
    /// It does not link to the document before it.
    #[error("its prev_hash {found} is not the hash of the document before it ({expected})")]
    Link {
        /// The `prev_hash` it carries.
        found: String,
        /// The hash of the document before it (or the genesis value).
        expected: String,
    },
    /// It carries no link after documents that do.
    #[error("it carries no prev_hash, but documents before it in the series do")]
    Unlinked,
    /// Its grand total is not the one the chain before it gives.
    #[error("its grand_total {found:?} is not {expected:?}, the total the chain before it gives")]
    GrandTotal {
        /// The total it carries.
        found: BTreeMap<String, i64>,
        /// The total recomputed.
        expected: BTreeMap<String, i64>,
    },
    /// Its transaction id appears earlier in the journal.
    #[error("its transaction id already appears earlier in the journal")]
    Duplicate,
    /// A sale, return or void of a business day already closed.
    #[error("its business day {date} was closed before it (closings are final)")]
    DayClosed {
        /// Its business date.
        date: String,
    },
    /// A void of a document whose business day is closed.
    #[error("it voids a document of a business day already closed")]
    VoidOfClosedDay,
    /// A closing of a day that is not after the series' last closing.
    #[error("it closes {date}, but the series is already closed through {closed_through}")]
    ClosedAgain {
        /// The day it closes.
        date: String,
        /// The last day closed before it.
        closed_through: String,
    },
    /// A closing of a day without documents.
    #[error("it closes {date}, a day with no document in the series")]
    ClosesNothing {
        /// The day it closes.
        date: String,
    },
    /// A closing that leaves an earlier day with documents open.
    #[error("it closes {date}, but {open} has documents and no closing")]
    EarlierDayOpen {
        /// The day it closes.
        date: String,
        /// The earlier day left open.
        open: String,
    },
    /// A closing's `covers_hash` is not the hash of the day's last document.
    #[error("its covers_hash {found} is not the hash of the day's last document ({expected})")]
    Covers {
        /// What it carries.
        found: String,
        /// The hash of the last document of the day.
        expected: String,
    },
    /// A closing's figures are not those of the documents it covers.
    #[error("its figures are not those of the documents it covers: {0}")]
    Figures(String),
    /// The series' last document is not the one the lane's journal head
    /// names: it was changed, or documents after it were removed.
    #[error(
        "its hash {found} is not the journal's head {expected}: the last document was changed or documents after it removed"
    )]
    Head {
        /// The hash of the last document read.
        found: String,
        /// The head the lane kept.
        expected: String,
    },
    /// A closing's counted cash does not add up.
    #[error("its cash in {currency} does not add up: expected {expected}, variance {variance}")]
    Cash {
        /// The currency.
        currency: String,
        /// The expected cash it states.
        expected: i64,
        /// The variance it states.
        variance: i64,
    },
}

/// The first broken document of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Its position in the input (1-based).
    pub position: u64,
    /// Its transaction id, when readable.
    pub transaction_id: Option<Uuid>,
    /// Its receipt number, when it is a sale, return or void.
    pub receipt_no: Option<i64>,
    /// Its closing number, when it is a closing.
    pub closing_no: Option<i64>,
    /// Why.
    pub why: Break,
}

/// A business day of a series with documents and no closing yet.
#[derive(Debug, Clone, Default)]
struct OpenDay {
    figures: Figures,
    /// The hash of its last document.
    last_hash: Digest,
}

/// A void's voided document, read again: a sale or return earlier in the
/// void's series.
struct Voided {
    /// Its business day as YYYYMMDD.
    day: u32,
    /// Its effect, tax and payment amounts.
    breakdown: Breakdown,
}

/// The document a void refers to, read again from its bytes: `Ok(None)`
/// when it is not a sale or return of `series` (the void then cancels
/// nothing), an error when its bytes cannot be read.
fn voided_in(bytes: Option<Vec<u8>>, series: &str) -> Result<Option<Voided>, Break> {
    #[derive(Deserialize)]
    struct Again {
        series: Text,
        #[serde(default)]
        sale: Option<SaleDoc>,
    }
    let unreadable = || Break::Unreadable("the document it voids cannot be read again".into());
    let again: Again =
        serde_json::from_slice(&bytes.ok_or_else(unreadable)?).map_err(|_| unreadable())?;
    Ok(again
        .sale
        .filter(|s| again.series == series && matches!(s.kind, Kind::Sale | Kind::Return))
        .map(|s| Voided {
            day: day_number(&s.business_date),
            breakdown: Breakdown::of(&s),
        }))
}

/// A business date as a number that sorts like the text (`YYYYMMDD`).
fn day_number(date: &str) -> u32 {
    date.bytes()
        .filter(u8::is_ascii_digit)
        .take(8)
        .fold(0, |n, b| n * 10 + u32::from(b - b'0'))
}

/// One series, as far as it has been checked.
#[derive(Debug, Clone, Default)]
pub struct SeriesReport {
    /// Sales, returns and voids read.
    pub documents: u64,
    /// Of which stored before the journal (no `prev_hash`).
    pub unchained: u64,
    /// The last receipt number.
    pub last_receipt_no: i64,
    /// Closings read (the last closing number).
    pub closings: i64,
    /// The last business day closed.
    pub closed_through: Option<String>,
    /// The same as a number (`YYYYMMDD`; 0 before the first closing).
    closed_day: u32,
    /// The series' state after the last document.
    pub head: Head,
    /// The hash of the last document (kept as bytes while reading; in
    /// `head` at the end).
    tip: Option<Digest>,
    /// The first broken document, if any; checking the series stops there.
    pub broken: Option<Broken>,
    /// Receipt numbers skipped by documents that still link to the one
    /// before them (`first..=last`): numbers this lane did not issue (a
    /// copy restored and acknowledged continues after head office's
    /// number). The numbering is then not 1..n, though the chain holds.
    pub gaps: Vec<(i64, i64)>,
    /// Days with documents not closed yet.
    open: BTreeMap<String, OpenDay>,
    /// The last document read: its position, id, receipt or closing number.
    last: Option<(u64, Uuid, Option<i64>, Option<i64>)>,
}

impl SeriesReport {
    /// The chain holds and the receipt numbers are exactly 1..n.
    pub fn intact(&self) -> bool {
        self.broken.is_none() && self.gaps.is_empty()
    }

    /// Checks the series' last document against the head its lane kept
    /// (the hash of the last document it stored): the last document has
    /// no successor to vouch for it.
    pub fn check_head(&mut self, kept: &str) {
        let found = self.head.last_hash.clone().unwrap_or_default();
        if self.broken.is_some() || found == kept {
            return;
        }
        let (position, id, receipt_no, closing_no) = self
            .last
            .map_or((0, None, None, None), |(p, i, r, c)| (p, Some(i), r, c));
        self.broken = Some(Broken {
            position,
            transaction_id: id,
            receipt_no,
            closing_no,
            why: Break::Head {
                found,
                expected: kept.to_owned(),
            },
        });
    }
}

/// A document parsed and hashed, ready to be checked in lane order.
/// Parsing and hashing are most of the work and need nothing of the
/// documents before: parsing runs on the worker threads, [`Verifier::accept`]
/// in order.
pub struct Parsed {
    locator: u64,
    hash: Digest,
    fields: Result<Fields, Unread>,
}

/// Why a stored record gave no fields.
enum Unread {
    /// The record holds a document that is not one.
    Document(String),
    /// The record itself is not one (an export line that is not a record):
    /// verification stops there.
    Record(String),
}

/// Parses and hashes a document's exact bytes; `locator` says where they
/// are, should a later void need them again.
fn parse(bytes: &[u8], locator: u64) -> Parsed {
    Parsed {
        locator,
        hash: sha256(bytes),
        // The whole document checked as UTF-8 at once (fast), so that the
        // parser need not check each key and string on its own.
        fields: std::str::from_utf8(bytes)
            .map_err(|e| format!("it is not UTF-8 text: {e}"))
            .and_then(|text| serde_json::from_str(text).map_err(|e| e.to_string()))
            .map_err(Unread::Document),
    }
}

/// How a document's exact bytes are taken out of a stored record: the
/// lane's database stores them as they are ([`as_stored`]); an export line
/// wraps them in a record. An error means the record is not one.
pub type Decode = fn(&[u8]) -> Result<Cow<'_, [u8]>, String>;

/// A record that is the document's bytes themselves.
pub fn as_stored(record: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    Ok(Cow::Borrowed(record))
}

/// Records read together, in lane order: their bytes end to end in one
/// buffer (one allocation per chunk, not one per document, and reused),
/// each with its locator.
#[derive(Debug, Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    docs: Vec<(u64, Range<usize>)>,
}

impl Chunk {
    /// Adds the next record.
    pub fn push(&mut self, locator: u64, doc: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(doc);
        self.docs.push((locator, start..self.bytes.len()));
    }

    /// Records in it.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// Whether it has none (the end of the stream).
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Empties it, keeping its room.
    fn clear(&mut self) {
        self.bytes.clear();
        self.docs.clear();
    }

    /// Decodes, parses and hashes records `part` of it into `out`.
    fn parse_into(&self, part: Range<usize>, decode: Decode, out: &mut Vec<Parsed>) {
        for (locator, r) in self.docs.get(part).unwrap_or_default() {
            let record = self.bytes.get(r.clone()).unwrap_or_default();
            out.push(match decode(record) {
                Ok(doc) => parse(&doc, *locator),
                Err(why) => Parsed {
                    locator: *locator,
                    hash: [0; 32],
                    fields: Err(Unread::Record(why)),
                },
            });
        }
    }

    /// Records `part` unreadable, their thread having failed: so that
    /// nothing is skipped silently.
    fn failed(&self, part: Range<usize>, out: &mut Vec<Parsed>) {
        out.clear();
        out.extend(
            self.docs
                .get(part)
                .unwrap_or_default()
                .iter()
                .map(|(l, _)| Parsed {
                    locator: *l,
                    hash: [0; 32],
                    fields: Err(Unread::Document("the thread that read it failed".into())),
                }),
        );
    }
}

/// Records a worker decodes, parses and hashes at once.
const PART: usize = 256;

/// Chunks in flight at once (being read, parsed or checked): all the
/// memory verification holds besides an id and a locator per document.
const IN_FLIGHT: usize = 4;

/// A record that is not one, where verification stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotARecord {
    /// Its locator.
    pub locator: u64,
    /// Why.
    pub why: String,
}

/// What [`verify_stream`] found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Each series.
    pub series: BTreeMap<String, SeriesReport>,
    /// Documents that could not be read at all.
    pub unreadable: Vec<Broken>,
    /// The record that is not one, if verification stopped at it.
    pub not_a_record: Option<NotARecord>,
}

/// Verifies a stream of records in lane order. Three kinds of thread
/// overlap: this one reads (`next` fills the empty chunk it is given, its
/// buffers reused, and leaves it empty at the end); one per core decodes
/// (`decode`), parses and hashes parts of chunks; one checks the parsed
/// documents in order (reading a voided document again with `fetch`).
/// Memory holds `IN_FLIGHT` (4) chunks. `documents`: how many to expect, if
/// known (room is made for them at once).
pub fn verify_stream<E>(
    mut next: impl FnMut(Chunk) -> Result<Chunk, E>,
    decode: Decode,
    mut fetch: impl FnMut(u64) -> Option<Vec<u8>> + Send,
    documents: usize,
) -> Result<Outcome, E> {
    use std::sync::{Arc, Mutex, mpsc};
    struct Job {
        chunk: Arc<Chunk>,
        part: Range<usize>,
        out: Vec<Parsed>,
        done: mpsc::SyncSender<Vec<Parsed>>,
    }
    enum Step {
        /// A part, its documents parsed when its job is done.
        Part(Arc<Chunk>, Range<usize>, mpsc::Receiver<Vec<Parsed>>),
        /// The chunk's parts are all given: its buffers go back once checked.
        End(Arc<Chunk>),
    }
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let (step_tx, step_rx) = mpsc::channel::<Step>();
    let (spare_tx, spare_rx) = mpsc::channel::<Chunk>();
    let (buf_tx, buf_rx) = mpsc::channel::<Vec<Parsed>>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let jobs = &job_rx;
            scope.spawn(move || {
                loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(Job {
                        chunk,
                        part,
                        mut out,
                        done,
                    }) = job
                    else {
                        return;
                    };
                    // A panic on one record fails its part, not the
                    // verification: the checker names each of its records.
                    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        chunk.parse_into(part.clone(), decode, &mut out);
                    }));
                    if parsed.is_err() {
                        chunk.failed(part, &mut out);
                    }
                    // The chunk let go of before the result is sent, so
                    // that the checker holds the last reference to it.
                    drop(chunk);
                    let _ = done.send(out);
                }
            });
        }
        let checker = scope.spawn(move || {
            let mut v = Verifier::new();
            v.seen.reserve(documents);
            let mut out = Outcome::default();
            for step in step_rx {
                match step {
                    Step::Part(chunk, part, result) => {
                        let mut parsed = result.recv().unwrap_or_else(|_| {
                            let mut out = vec![];
                            chunk.failed(part, &mut out);
                            out
                        });
                        drop(chunk);
                        for p in &parsed {
                            if let Err(Unread::Record(why)) = &p.fields {
                                out.not_a_record = Some(NotARecord {
                                    locator: p.locator,
                                    why: why.clone(),
                                });
                                // Dropping the steps stops the reader.
                                out.series = v.finish();
                                return out;
                            }
                            if let Err(b) = v.accept(p, &mut fetch) {
                                out.unreadable.push(b);
                            }
                        }
                        parsed.clear();
                        let _ = buf_tx.send(parsed);
                    }
                    Step::End(chunk) => {
                        // Every part's result is in, so this is the last
                        // reference; were it not, a new chunk goes back
                        // instead, so that the reader never waits forever.
                        let mut c = Arc::try_unwrap(chunk).unwrap_or_default();
                        c.clear();
                        let _ = spare_tx.send(c);
                    }
                }
            }
            out.series = v.finish();
            out
        });
        // This thread reads. A chunk comes back once checked; until
        // `IN_FLIGHT` are out, a new one is made.
        let mut made = 0;
        let read = (|| {
            loop {
                let spare = if made < IN_FLIGHT {
                    made += 1;
                    Chunk::default()
                } else {
                    match spare_rx.recv() {
                        Ok(c) => c,
                        // The checker stopped (a record that is not one).
                        Err(_) => return Ok(()),
                    }
                };
                let chunk = Arc::new(next(spare)?);
                if chunk.is_empty() {
                    return Ok(());
                }
                for from in (0..chunk.len()).step_by(PART) {
                    let part = from..chunk.len().min(from + PART);
                    let (done, result) = mpsc::sync_channel(1);
                    let out = buf_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(PART));
                    // Should the workers be gone, the part's result never
                    // comes and the checker names its records unreadable.
                    let _ = job_tx.send(Job {
                        chunk: chunk.clone(),
                        part: part.clone(),
                        out,
                        done,
                    });
                    if step_tx
                        .send(Step::Part(chunk.clone(), part, result))
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                if step_tx.send(Step::End(chunk)).is_err() {
                    return Ok(());
                }
            }
        })();
        drop(job_tx);
        drop(step_tx);
        let out = checker.join().unwrap_or_else(|_| Outcome {
            // Never a silent pass: nothing is proven.
            unreadable: vec![Broken {
                position: 0,
                transaction_id: None,
                receipt_no: None,
                closing_no: None,
                why: Break::Unreadable("the thread that checks the documents failed".into()),
            }],
            ..Outcome::default()
        });
        read.map(|()| out)
    })
}

/// Where the verifier reads a voided document again: its bytes at a
/// locator given with an earlier document.
pub type Fetch<'a> = dyn FnMut(u64) -> Option<Vec<u8>> + 'a;

/// Checks documents given in lane order, series by series: every link,
/// every grand total, receipt and closing numbers 1..n, every closing's
/// figures, no id twice. It keeps each document's id and locator (for
/// duplicates and voids) and each open day's figures, never the
/// documents' bytes: a void's voided document is read again (`fetch`).
#[derive(Debug, Default)]
pub struct Verifier {
    /// Each series, by its index in `names`.
    series: Vec<SeriesReport>,
    names: HashMap<String, u32, foldhash::fast::RandomState>,
    /// Each document accepted, by id: where to read it again.
    seen: HashMap<Uuid, u64, foldhash::fast::RandomState>,
    position: u64,
    /// The series of the last document, and its index.
    last_series: Option<(Text, usize)>,
}

impl Verifier {
    /// A verifier that has read nothing.
    pub fn new() -> Verifier {
        Verifier::default()
    }

    /// Reads the next document's exact bytes (see [`Verifier::accept`]).
    pub fn push(
        &mut self,
        bytes: &[u8],
        locator: u64,
        fetch: &mut Fetch<'_>,
    ) -> Result<(), Broken> {
        self.accept(&parse(bytes, locator), fetch)
    }

    /// The index of a series (a new one the first time). The last one
    /// asked for is answered without a lookup: a lane's documents mostly
    /// follow each other in one series.
    fn index(&mut self, name: &str) -> usize {
        if let Some((last, i)) = &self.last_series
            && last == name
        {
            return *i;
        }
        let i = match self.names.get(name) {
            Some(i) => *i as usize,
            None => {
                let i = self.series.len();
                self.names
                    .insert(name.to_owned(), u32::try_from(i).unwrap_or(u32::MAX));
                self.series.push(SeriesReport::default());
                i
            }
        };
        self.last_series = Some((name.into(), i));
        i
    }

    /// Checks the next document, parsed. An unreadable document breaks no
    /// series it cannot be placed in: it is returned.
    pub fn accept(&mut self, p: &Parsed, fetch: &mut Fetch<'_>) -> Result<(), Broken> {
        self.position += 1;
        let position = self.position;
        let unreadable = |why: String| Broken {
            position,
            transaction_id: None,
            receipt_no: None,
            closing_no: None,
            why: Break::Unreadable(why),
        };
        let f = match &p.fields {
            Ok(f) => f,
            Err(Unread::Document(why) | Unread::Record(why)) => {
                return Err(unreadable(why.clone()));
            }
        };
        let index = self.index(&f.series);
        // What a void cancels: a sale or return earlier in the series,
        // read again where it was seen.
        let voided = match f
            .sale
            .as_ref()
            .filter(|sale| sale.kind == Kind::Void)
            .and_then(|sale| sale.references)
            .and_then(|r| self.seen.get(&r).copied())
        {
            Some(locator) => voided_in(fetch(locator), &f.series),
            None => Ok(None),
        };
        // One lookup per document: the entry found is filled if it holds.
        let seen = self.seen.entry(f.transaction_id);
        let first_seen = matches!(seen, Entry::Vacant(_));
        let remember = |seen: Entry<'_, Uuid, u64>| {
            if let Entry::Vacant(e) = seen {
                e.insert(p.locator);
            }
        };
        match (f.kind, f.receipt_no, &f.sale, f.closing_no, &f.closing) {
            (None, Some(receipt_no), Some(sale), None, None) => {
                let doc = Doc {
                    id: f.transaction_id,
                    receipt_no,
                    prev_hash: f.prev_hash.as_ref(),
                    grand_total: f.grand_total.as_ref(),
                    sale,
                };
                let Some(s) = self.series.get_mut(index) else {
                    return Err(unreadable("its series could not be kept".into()));
                };
                if s.push_sale(position, first_seen, &doc, voided, p.hash) {
                    remember(seen);
                }
                Ok(())
            }
            (Some(ClosingKind::Closing), None, None, Some(closing_no), Some(closing)) => {
                let doc = ClosingDoc {
                    id: f.transaction_id,
                    closing_no,
                    prev_hash: f.prev_hash.as_ref(),
                    grand_total: f.grand_total.as_ref(),
                    closing,
                };
                let Some(s) = self.series.get_mut(index) else {
                    return Err(unreadable("its series could not be kept".into()));
                };
                if s.push_closing(position, first_seen, &doc, p.hash) {
                    remember(seen);
                }
                Ok(())
            }
            _ => Err(unreadable(
                "it is neither a sale, return or void with a receipt_no and a sale, nor a \
                 closing with a closing_no and its figures"
                    .into(),
            )),
        }
    }

    /// Each series and how it came out.
    pub fn finish(self) -> BTreeMap<String, SeriesReport> {
        let mut series: Vec<Option<SeriesReport>> = self.series.into_iter().map(Some).collect();
        self.names
            .into_iter()
            .filter_map(|(name, i)| {
                let mut s = series.get_mut(i as usize)?.take()?;
                s.head.last_hash = s.tip.as_ref().map(to_hex);
                Some((name, s))
            })
            .collect()
    }
}

/// A sale, return or void being checked.
struct Doc<'a> {
    id: Uuid,
    receipt_no: i64,
    prev_hash: Option<&'a Link>,
    grand_total: Option<&'a Totals>,
    sale: &'a SaleDoc,
}

/// A closing being checked.
struct ClosingDoc<'a> {
    id: Uuid,
    closing_no: i64,
    prev_hash: Option<&'a Link>,
    grand_total: Option<&'a Totals>,
    closing: &'a Closing,
}

impl SeriesReport {
    /// The link and the grand total a chained document must carry: the
    /// total before it with `change` (currency, effect) applied.
    fn link(
        &self,
        prev_hash: Option<&Link>,
        grand_total: Option<&Totals>,
        change: Option<(&str, i64)>,
    ) -> Option<Break> {
        let expected = self.tip.unwrap_or([0; 32]);
        match (prev_hash, grand_total) {
            (None, _) if self.documents > self.unchained || self.closings > 0 => {
                Some(Break::Unlinked)
            }
            (None, _) => None,
            (Some(p), _) if *p != Link::Hash(expected) => Some(Break::Link {
                found: p.text(),
                expected: to_hex(&expected),
            }),
            (Some(_), Some(g)) => g.check(&self.head.grand_total, change).err(),
            (Some(_), None) => Some(Break::GrandTotal {
                found: BTreeMap::new(),
                expected: expected_total(&self.head.grand_total, change),
            }),
        }
    }

    /// Checks a sale, return or void; `true` when it holds.
    fn push_sale(
        &mut self,
        position: u64,
        first_seen: bool,
        f: &Doc<'_>,
        voided: Result<Option<Voided>, Break>,
        hash: Digest,
    ) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let broken = |why| Broken {
            position,
            transaction_id: Some(f.id),
            receipt_no: Some(f.receipt_no),
            closing_no: None,
            why,
        };
        // Without the voided document, nothing else can be checked.
        let voided = match voided {
            Ok(v) => v,
            Err(why) => {
                self.broken = Some(broken(why));
                return false;
            }
        };
        let expected_no = self.last_receipt_no + 1;
        let numbering = Break::Numbering {
            found: f.receipt_no,
            expected: expected_no,
        };
        // A number skipped forward by a document that links to the one
        // before it is a gap in the numbering, not in the chain (a lane
        // restored from an old copy continues after head office's number):
        // recorded, and the chain checked on. Anything else is a break.
        let jump = f.receipt_no > expected_no;
        let why = if !first_seen {
            Some(Break::Duplicate)
        } else if f.receipt_no < expected_no {
            Some(numbering.clone())
        } else {
            None
        };
        let sale = f.sale;
        let effect = effect(
            sale.kind,
            sale.total,
            voided.as_ref().map(|v| v.breakdown.effect),
        );
        let why =
            why.or_else(|| self.link(f.prev_hash, f.grand_total, Some((&sale.currency, effect))));
        let why = match why {
            // A jump whose document does not link: the numbering is the
            // first thing wrong with it.
            Some(_) if jump => Some(numbering),
            None if jump && f.prev_hash.is_none() => Some(numbering),
            other => other,
        };
        // A closed day takes nothing more; a void may not cancel what a
        // closing has counted.
        let closed_through = self.closed_day;
        let why = why.or_else(|| {
            if day_number(&sale.business_date) <= closed_through {
                Some(Break::DayClosed {
                    date: sale.business_date.to_string(),
                })
            } else if voided.as_ref().is_some_and(|v| v.day <= closed_through) {
                Some(Break::VoidOfClosedDay)
            } else {
                None
            }
        });
        if let Some(why) = why {
            self.broken = Some(broken(why));
            return false;
        }
        if jump {
            self.gaps.push((expected_no, f.receipt_no - 1));
        }
        self.documents += 1;
        if f.prev_hash.is_none() {
            self.unchained += 1;
        }
        self.last_receipt_no = f.receipt_no;
        let day = match self.open.get_mut(sale.business_date.as_str()) {
            Some(day) => day,
            None => self.open.entry(sale.business_date.to_string()).or_default(),
        };
        day.figures
            .add(f.receipt_no, sale, voided.as_ref().map(|v| &v.breakdown));
        day.last_hash = hash;
        add(&mut self.head.grand_total, &sale.currency, effect);
        self.tip = Some(hash);
        self.last = Some((position, f.id, Some(f.receipt_no), None));
        true
    }

    /// Checks a closing; `true` when it holds.
    fn push_closing(
        &mut self,
        position: u64,
        first_seen: bool,
        f: &ClosingDoc<'_>,
        hash: Digest,
    ) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let date = &f.closing.business_date;
        let expected_no = self.closings + 1;
        let why = if !first_seen {
            Some(Break::Duplicate)
        } else if f.closing_no != expected_no {
            Some(Break::ClosingNumbering {
                found: f.closing_no,
                expected: expected_no,
            })
        } else if f.prev_hash.is_none() {
            Some(Break::Unlinked)
        } else {
            self.link(f.prev_hash, f.grand_total, None)
        };
        let why = why.or_else(|| self.closing_figures(f.closing));
        if let Some(why) = why {
            self.broken = Some(Broken {
                position,
                transaction_id: Some(f.id),
                receipt_no: None,
                closing_no: Some(f.closing_no),
                why,
            });
            return false;
        }
        self.open.remove(date);
        self.closings = f.closing_no;
        self.closed_day = day_number(date);
        self.closed_through = Some(date.clone());
        self.tip = Some(hash);
        self.last = Some((position, f.id, None, Some(f.closing_no)));
        true
    }

    /// What is wrong with a closing's figures, if anything.
    fn closing_figures(&self, c: &Closing) -> Option<Break> {
        let date = &c.business_date;
        if let Some(through) = self.closed_through.as_ref().filter(|t| date <= *t) {
            return Some(Break::ClosedAgain {
                date: date.clone(),
                closed_through: through.clone(),
            });
        }
        let Some(day) = self.open.get(date) else {
            return Some(Break::ClosesNothing { date: date.clone() });
        };
        if let Some(open) = self.open.keys().find(|d| *d < date) {
            return Some(Break::EarlierDayOpen {
                date: date.clone(),
                open: open.clone(),
            });
        }
        if from_hex(&c.covers_hash) != Some(day.last_hash) {
            return Some(Break::Covers {
                found: c.covers_hash.clone(),
                expected: to_hex(&day.last_hash),
            });
        }
        if c.figures != day.figures {
            return Some(Break::Figures(first_difference(&c.figures, &day.figures)));
        }
        c.cash.iter().find_map(|(cur, cash)| {
            let expected = day.figures.expected_cash(cur);
            (cash.expected != expected || cash.variance != cash.counted.saturating_sub(expected))
                .then(|| Break::Cash {
                    currency: cur.clone(),
                    expected: cash.expected,
                    variance: cash.variance,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chained document as the lane writes it.
    fn doc(
        head: &Head,
        id: Uuid,
        no: i64,
        kind: &str,
        refs: Option<Uuid>,
        total: i64,
    ) -> (Vec<u8>, Head) {
        let k: Kind = serde_json::from_value(serde_json::json!(kind)).unwrap();
        let e = effect(k, total, None);
        let gt = after(&head.grand_total, "KES", e);
        let body = serde_json::json!({
            "transaction_id": id, "lane_id": "L1", "series": "L1", "receipt_no": no,
            "lane_seq": no, "recorded_at": "2026-11-22T10:00:00.000Z",
            "prev_hash": head.next_prev_hash(), "grand_total": gt,
            "sale": {"kind": kind, "references": refs, "business_date": "2026-11-22",
                     "currency": "KES", "total": total}
        })
        .to_string()
        .into_bytes();
        let next = Head {
            last_hash: Some(hash(&body)),
            grand_total: gt,
        };
        (body, next)
    }

    /// Verifies documents given as JSON values, in order.
    fn verify_values(docs: &[serde_json::Value]) -> SeriesReport {
        let mut v = Verifier::new();
        for d in docs {
            v.push(d.to_string().as_bytes(), 0, &mut |_| None).unwrap();
        }
        v.finish().remove("L1").unwrap()
    }

    #[test]
    fn grand_totals_compare_as_maps_whatever_their_order_and_amounts_never_overflow() {
        // Two currencies, the second document's total written in another
        // key order: the same map, so the chain holds (as any JSON reader
        // would see it).
        let sale = |no: i64, prev: &str, currency: &str, total: i64, gt: serde_json::Value| {
            serde_json::json!({
                "transaction_id": Uuid::new_v4(), "series": "L1", "receipt_no": no,
                "prev_hash": prev, "grand_total": gt,
                "sale": {"kind": if total < 0 { "return" } else { "sale" },
                         "business_date": "2026-11-22", "currency": currency,
                         "total": total.saturating_abs(),
                         "lines": [{"tax_code": "A", "amount": total.saturating_abs()},
                                   {"amount": 1}, {"tax_code": "A", "amount": -1}],
                         "payments": [{"method": "cash", "amount": total.saturating_abs()}]}
            })
        };
        let first = sale(1, GENESIS, "KES", 100, serde_json::json!({"KES": 100}));
        let h1 = hash(first.to_string().as_bytes());
        let second = serde_json::from_str::<serde_json::Value>(&format!(
            r#"{{"transaction_id":"{}","series":"L1","receipt_no":2,"prev_hash":"{h1}",
            "grand_total":{{"USD":5,"KES":100}},
            "sale":{{"kind":"sale","business_date":"2026-11-22","currency":"USD","total":5}}}}"#,
            Uuid::new_v4()
        ))
        .unwrap();
        let r = verify_values(&[first.clone(), second.clone()]);
        assert_eq!(r.broken, None, "{:?}", r.broken);
        assert_eq!(
            r.head.grand_total,
            BTreeMap::from([("KES".into(), 100), ("USD".into(), 5)])
        );
        let day = &r.open["2026-11-22"].figures;
        assert_eq!(day.tax_codes["KES"]["A"], 99);
        assert_eq!(day.tax_codes["KES"][""], 1);

        // A currency left out of the total: named, with what it should be.
        let mut short = second.clone();
        short["grand_total"] = serde_json::json!({"USD": 5});
        let broken = verify_values(&[first.clone(), short]).broken.unwrap();
        assert_eq!(
            broken.why,
            Break::GrandTotal {
                found: BTreeMap::from([("USD".into(), 5)]),
                expected: BTreeMap::from([("KES".into(), 100), ("USD".into(), 5)]),
            }
        );

        // Amounts at the edge of i64 (a crafted export) saturate instead
        // of overflowing: the verifier names the break and does not panic.
        let mut huge = sale(2, &h1, "KES", -1, serde_json::json!({"KES": 0}));
        huge["sale"]["total"] = i64::MIN.into();
        huge["sale"]["lines"] = serde_json::json!([{"amount": i64::MIN}]);
        let r = verify_values(&[first, huge]);
        assert!(matches!(r.broken.unwrap().why, Break::GrandTotal { .. }));
    }

    #[test]
    fn a_stream_of_many_chunks_is_checked_in_order_with_voids_of_chunks_long_gone() {
        // 20,000 sales in chunks of 1,000 (five times the chunks in
        // flight), two of them voided far later; every record's locator is
        // its index, and a void's voided document is fetched by it.
        let mut head = Head::default();
        let mut docs: Vec<Vec<u8>> = vec![];
        let mut ids = vec![];
        for no in 1..=20_000i64 {
            let id = Uuid::new_v4();
            let voids = match no {
                15_000 => Some(100),
                19_000 => Some(10_000),
                _ => None,
            };
            let (b, h) = match voids {
                None => doc(&head, id, no, "sale", None, no),
                Some(v) => {
                    let (b, mut h) = doc(&head, id, no, "void", Some(ids[v - 1]), no);
                    // The void takes the voided sale's total back out.
                    let gt = after(&head.grand_total, "KES", -(v as i64));
                    let text = String::from_utf8(b).unwrap().replacen(
                        &format!(r#""grand_total":{{"KES":{}}}"#, h.grand_total["KES"]),
                        &format!(r#""grand_total":{{"KES":{}}}"#, gt["KES"]),
                        1,
                    );
                    h.last_hash = Some(hash(text.as_bytes()));
                    h.grand_total = gt;
                    (text.into_bytes(), h)
                }
            };
            docs.push(b);
            ids.push(id);
            head = h;
        }
        let run = |docs: &[Vec<u8>], decode: Decode| {
            let mut at = 0;
            let next = |mut c: Chunk| -> Result<Chunk, std::convert::Infallible> {
                for d in docs.iter().skip(at).take(1000) {
                    c.push(at as u64, d);
                    at += 1;
                }
                Ok(c)
            };
            let fetch = |l: u64| docs.get(l as usize).cloned();
            let Ok(out) = verify_stream(next, decode, fetch, docs.len());
            out
        };
        let out = run(&docs, as_stored);
        assert!(out.unreadable.is_empty() && out.not_a_record.is_none());
        let l1 = &out.series["L1"];
        assert_eq!(l1.broken, None);
        assert_eq!(l1.documents, 20_000);
        // Every sale's total (its number), less the two voids' own numbers
        // (voids are not sales) and the two sales they cancel.
        let sum: i64 = (1..=20_000).sum();
        assert_eq!(
            l1.head.grand_total["KES"],
            sum - 15_000 - 19_000 - 100 - 10_000
        );
        assert_eq!(l1.head.last_hash, head.last_hash);

        // A record that is not one stops the stream there, by its locator.
        let mut bad = docs.clone();
        bad[12_345] = b"not a record".to_vec();
        fn strict(r: &[u8]) -> Result<Cow<'_, [u8]>, String> {
            if r.starts_with(b"not") {
                return Err("not a record".into());
            }
            Ok(Cow::Borrowed(r))
        }
        let out = run(&bad, strict);
        assert_eq!(
            out.not_a_record,
            Some(NotARecord {
                locator: 12_345,
                why: "not a record".into()
            })
        );
        assert_eq!(out.series["L1"].documents, 12_345);
        // As a document, it is unreadable, and the next one does not link.
        let out = run(&bad, as_stored);
        assert_eq!(out.unreadable.len(), 1);
        assert_eq!(out.unreadable[0].position, 12_346);
        let broken = out.series["L1"].broken.clone().unwrap();
        assert_eq!(broken.position, 12_347);
        assert!(matches!(broken.why, Break::Numbering { .. }), "{broken:?}");
    }

    #[test]
    fn an_intact_chain_verifies_and_a_changed_byte_is_named() {
        let mut head = Head::default();
        let mut docs = vec![];
        for (i, t) in [100, 250, 75].iter().enumerate() {
            let (b, h) = doc(&head, Uuid::new_v4(), i as i64 + 1, "sale", None, *t);
            docs.push(b);
            head = h;
        }
        let mut v = Verifier::new();
        for d in &docs {
            v.push(d, 0, &mut |_| None).unwrap();
        }
        let r = v.finish();
        assert_eq!(r["L1"].broken, None);
        assert_eq!(r["L1"].documents, 3);
        assert_eq!(r["L1"].head.grand_total["KES"], 425);

        // One byte of the second document: the third no longer links.
        let mut bad = docs.clone();
        let at = bad[1].iter().position(|b| *b == b'2').unwrap();
        bad[1][at] = b'3';
        let mut v = Verifier::new();
        for d in &bad {
            v.push(d, 0, &mut |_| None).unwrap();
        }
        let broken = v.finish()["L1"].broken.clone().unwrap();
        assert_eq!(broken.position, 3, "{broken:?}");
        assert!(matches!(broken.why, Break::Link { .. }));

        // A number skipped by a document that links to the one before it
        // (a restored copy, acknowledged): a gap, and the chain checked on.
        let (b4, _) = doc(&head, Uuid::new_v4(), 9, "sale", None, 10);
        let mut v = Verifier::new();
        for d in docs.iter().chain([&b4]) {
            v.push(d, 0, &mut |_| None).unwrap();
        }
        let r = v.finish();
        assert_eq!(r["L1"].broken, None);
        assert_eq!(r["L1"].gaps, [(4, 8)]);
        assert!(!r["L1"].intact());
        assert_eq!(r["L1"].head.grand_total["KES"], 435);

        // The second left out: the third's number and link are wrong.
        let mut v = Verifier::new();
        v.push(&docs[0], 0, &mut |_| None).unwrap();
        v.push(&docs[2], 0, &mut |_| None).unwrap();
        let broken = v.finish()["L1"].broken.clone().unwrap();
        assert_eq!(
            broken.why,
            Break::Numbering {
                found: 3,
                expected: 2
            }
        );
    }
}
