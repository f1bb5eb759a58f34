//! `laned verify`: the fiscal journal checked from the lane's database, or
//! from an NDJSON export (`--file`, each line's `envelope_text`), with
//! nothing else (docs/journal.md): every link of every series' chain, every
//! grand total, receipt numbers exactly 1..n. One line per series; the
//! first broken document named, and exit code 8, when one does not hold.
//! Reads only.

use std::io::Write;

use laned::contract::bundle::{BundleReport, Checker, Line, SeriesProof};
use laned::contract::journal::{self, Chunk, SeriesReport};
use laned::lane::config::ConfigArgs;
use laned::lane::store::ReadOnly;
use laned::lane::store::journal::VerifyOutcome;
use serde_json::json;

/// Options of `laned verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Verify this NDJSON export (`laned export --state all`) instead of
    /// the lane's database.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    file: Option<std::path::PathBuf>,
    /// Verify this audit bundle (`salemap audit`): the chains, every
    /// acknowledgement and day certificate, and the seal; needs no
    /// database and no network.
    #[arg(long, value_name = "FILE")]
    bundle: Option<std::path::PathBuf>,
    /// With --bundle: the back-end's public key (64 hex digits) or key id
    /// (16), as head office publishes it; a bundle signed with another key
    /// is not proven.
    #[arg(long, value_name = "KEY", requires = "bundle")]
    key: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// A series' journal does not hold: exit code 8, after the report.
#[derive(Debug, thiserror::Error)]
#[error("the fiscal journal is broken in {0} series")]
pub struct Broken(pub usize);

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.bundle {
        return bundle(path, args.key.as_deref(), args.json);
    }
    let (source, outcome) = match &args.file {
        Some(path) => (path.display().to_string(), from_file(path)?),
        None => {
            let dir = laned::lane::config::data_dir(&args.config)?;
            let db = ReadOnly::open(&dir)?;
            (db.path().display().to_string(), db.verify_journal()?)
        }
    };
    let mut out = std::io::stdout().lock();
    let broken = outcome
        .series
        .values()
        .filter(|s| s.broken.is_some())
        .count()
        + usize::from(!outcome.unreadable.is_empty());
    if args.json {
        let series: serde_json::Map<String, serde_json::Value> = outcome
            .series
            .iter()
            .map(|(name, s)| (name.clone(), as_json(s)))
            .collect();
        let unreadable = unreadable_json(&outcome);
        writeln!(
            out,
            "{:#}",
            json!({"source": source, "intact": broken == 0,
                   "series": series, "unreadable": unreadable})
        )?;
    } else {
        for (name, s) in &outcome.series {
            writeln!(out, "{}", line(name, s))?;
        }
        for b in &outcome.unreadable {
            writeln!(out, "document {} is not readable: {}", b.position, b.why)?;
        }
        if outcome.series.is_empty() && outcome.unreadable.is_empty() {
            writeln!(out, "no documents yet: nothing to verify")?;
        }
    }
    out.flush()?;
    if broken > 0 {
        return Err(Broken(broken).into());
    }
    Ok(())
}

/// A line of the export that is not one.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of {path} is not an export record with envelope_text: {why}")]
pub struct NotAnExport {
    path: String,
    line: u64,
    why: String,
}

/// One export record's envelope text.
#[derive(serde::Deserialize)]
struct Record {
    envelope_text: String,
}

/// An export line's envelope: its exact bytes (decoded on the worker
/// threads).
fn envelope_of(line: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    serde_json::from_slice::<Record>(line)
        .map(|r| r.envelope_text.into_bytes().into())
        .map_err(|e| e.to_string())
}

/// The export's lines through the verifier, streamed: this thread reads
/// chunks of lines, the other cores take each line's envelope out of its
/// record, parse and hash it, one thread checks in order (memory holds a
/// few chunks). A void's voided document is read again from its line.
fn from_file(path: &std::path::Path) -> anyhow::Result<VerifyOutcome> {
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
    };
    let mut input = open()?;
    let fetch = refetch(open()?);
    let mut offset = 0u64;
    let next = chunks_of(&mut input, &mut offset, path, |line| {
        Ok(!line.trim_ascii().is_empty())
    });
    let outcome = journal::verify_stream(next, envelope_of, fetch, 0)?;
    refuse_not_a_record(path, outcome.not_a_record)?;
    Ok(VerifyOutcome {
        series: outcome.series,
        unreadable: outcome.unreadable,
    })
}

type Reader = std::io::BufReader<std::fs::File>;

/// A document's envelope read again from the line at `offset` (a void's
/// voided document), through a second handle on the file.
fn refetch(mut again: Reader) -> impl FnMut(u64) -> Option<Vec<u8>> + Send {
    use std::io::{BufRead, Seek};
    move |offset: u64| {
        let mut line = vec![];
        again.seek(std::io::SeekFrom::Start(offset)).ok()?;
        again.read_until(b'\n', &mut line).ok()?;
        envelope_of(&line).ok().map(std::borrow::Cow::into_owned)
    }
}

/// Fills the verifier's chunks with the file's lines that `keep` keeps,
/// each with the offset it starts at.
fn chunks_of<'a>(
    input: &'a mut Reader,
    offset: &'a mut u64,
    path: &'a std::path::Path,
    mut keep: impl FnMut(&[u8]) -> anyhow::Result<bool> + 'a,
) -> impl FnMut(Chunk) -> anyhow::Result<Chunk> + 'a {
    use std::io::BufRead;
    let mut line = vec![];
    move |mut chunk: Chunk| {
        while chunk.len() < 4096 {
            line.clear();
            let read = input
                .read_until(b'\n', &mut line)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            let at = *offset;
            *offset += read as u64;
            if keep(&line)? {
                chunk.push(at, &line);
            }
        }
        Ok(chunk)
    }
}

/// A line that is not a record of the file's kind ends the check: its
/// line number and why.
fn refuse_not_a_record(
    path: &std::path::Path,
    bad: Option<journal::NotARecord>,
) -> anyhow::Result<()> {
    match bad {
        Some(bad) => Err(NotAnExport {
            path: path.display().to_string(),
            line: line_at(path, bad.locator)?,
            why: bad.why,
        }
        .into()),
        None => Ok(()),
    }
}

/// The number of the line that starts at byte `offset` of the file
/// (counted streaming: the file may be larger than memory).
fn line_at(path: &std::path::Path, offset: u64) -> anyhow::Result<u64> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    let mut before = std::io::BufReader::new(file).take(offset);
    let mut lines = 1u64;
    loop {
        let buf = before
            .fill_buf()
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if buf.is_empty() {
            return Ok(lines);
        }
        let n = buf.len();
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        before.consume(n);
    }
}

fn totals(s: &SeriesReport) -> String {
    let t: Vec<String> = s
        .head
        .grand_total
        .iter()
        .map(|(c, v)| laned::contract::money::display(*v, c))
        .collect();
    if t.is_empty() {
        "none".into()
    } else {
        t.join(", ")
    }
}

/// The closings of an intact series, if it has any.
fn closings(s: &SeriesReport) -> String {
    match (s.closings, &s.closed_through) {
        (0, _) | (_, None) => String::new(),
        (n, Some(d)) => format!(", closings 1..{n} (closed through {d})"),
    }
}

fn line(name: &str, s: &SeriesReport) -> String {
    let before = if s.unchained > 0 {
        format!(" ({} stored before the journal)", s.unchained)
    } else {
        String::new()
    };
    let gaps: Vec<String> = s
        .gaps
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect();
    match &s.broken {
        None if !gaps.is_empty() => format!(
            "series {name}: NOT 1..n: the chain holds through {} documents{before}, but receipt \
             numbers {} were not issued on this lane (a copy restored and acknowledged \
             continues after head office's last number; those documents are head office's), \
             grand total {}, last hash {}",
            s.documents,
            gaps.join(", "),
            totals(s),
            s.head.last_hash.as_deref().unwrap_or("-")
        ),
        None => format!(
            "series {name}: intact: {} documents{before}, receipts 1..{}{}, grand total {}, \
             last hash {}",
            s.documents,
            s.last_receipt_no,
            closings(s),
            totals(s),
            s.head.last_hash.as_deref().unwrap_or("-")
        ),
        Some(b) => format!(
            "series {name}: BROKEN at document {} ({}, transaction {}): {}; the {} \
             documents before it hold",
            b.position,
            match (b.receipt_no, b.closing_no) {
                (Some(n), _) => format!("receipt {n}"),
                (None, Some(n)) => format!("closing {n}"),
                (None, None) => "receipt ?".into(),
            },
            b.transaction_id
                .map_or_else(|| "?".into(), |t| t.to_string()),
            b.why,
            s.documents
        ),
    }
}

fn as_json(s: &SeriesReport) -> serde_json::Value {
    json!({
        "intact": s.intact(),
        "gaps": s.gaps.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        "documents": s.documents,
        "stored_before_the_journal": s.unchained,
        "last_receipt_no": s.last_receipt_no,
        "closings": s.closings,
        "closed_through": s.closed_through,
        "grand_total": s.head.grand_total,
        "last_hash": s.head.last_hash,
        "broken": s.broken.as_ref().map(|b| json!({
            "position": b.position,
            "receipt_no": b.receipt_no,
            "closing_no": b.closing_no,
            "transaction_id": b.transaction_id,
            "why": b.why.to_string(),
        })),
    })
}

/// The file is not an audit bundle: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{path} is not an audit bundle: {source}")]
pub struct NotABundle {
    path: String,
    #[source]
    source: laned::contract::bundle::BundleError,
}

/// Something in the bundle is not proven: exit code 8, after the report.
#[derive(Debug, thiserror::Error)]
#[error("the audit bundle does not prove everything it holds (see above)")]
pub struct NotProven;

/// `laned verify --bundle`: the journal's checks on the bundle's
/// documents, and the bundle's own (acknowledgements, certificates, seal).
fn bundle(path: &std::path::Path, key: Option<&str>, as_json_out: bool) -> anyhow::Result<()> {
    let (outcome, report) = from_bundle(path)?;
    let h = &report.header;
    let key_ok = key.is_none_or(|k| {
        let k = k.trim().to_ascii_lowercase();
        k == h.signing_key.public_key || k == h.signing_key.key_id
    });
    let mut proven = report.signed() && key_ok && outcome.unreadable.is_empty();
    let mut lines = Vec::new();
    let mut series_json = serde_json::Map::new();
    let names: std::collections::BTreeSet<&String> =
        outcome.series.keys().chain(report.series.keys()).collect();
    for name in names {
        let chain = outcome.series.get(name).cloned().unwrap_or_default();
        let proof = report.series.get(name).cloned().unwrap_or_default();
        let ok =
            chain.intact() && proof.problems.is_empty() && proof.acknowledged == proof.documents;
        proven &= ok;
        lines.push(series_line(name, &chain, &proof, h, ok));
        let mut j = as_json(&chain);
        if let Some(o) = j.as_object_mut() {
            o.insert("proven".into(), json!(ok));
            o.insert("acknowledged".into(), json!(proof.acknowledged));
            o.insert("in_range".into(), json!(proof.in_range));
            o.insert("closed_in_range".into(), json!(proof.closed));
            o.insert("certified_in_range".into(), json!(proof.certified));
            o.insert("problems".into(), json!(proof.problems));
        }
        series_json.insert(name.clone(), j);
    }
    let seal_line = match (report.sealed, key_ok) {
        (true, true) => format!(
            "bundle: sealed by key {} of tenant {} (lane {}, days {}..{}, written {}){}",
            h.signing_key.key_id,
            h.tenant,
            h.lane_id,
            h.from,
            h.to,
            h.generated_at,
            if key.is_some() {
                ", the key given"
            } else {
                "; compare the key with the one head office publishes (--key)"
            }
        ),
        (true, false) => format!(
            "bundle: NOT PROVEN: sealed by key {}, not by the key given",
            h.signing_key.key_id
        ),
        (false, _) => "bundle: NOT PROVEN: the seal does not hold".to_owned(),
    };
    let mut out = std::io::stdout().lock();
    if as_json_out {
        let unreadable = unreadable_json(&outcome);
        writeln!(
            out,
            "{:#}",
            json!({"source": path.display().to_string(), "proven": proven,
                   "sealed": report.sealed, "key_matches": key_ok,
                   "tenant": h.tenant, "lane_id": h.lane_id, "from": h.from, "to": h.to,
                   "key_id": h.signing_key.key_id, "series": series_json,
                   "problems": report.problems, "unreadable": unreadable})
        )?;
    } else {
        writeln!(out, "{seal_line}")?;
        for p in &report.problems {
            writeln!(out, "  line {}: {}", p.line, p.why)?;
        }
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        for b in &outcome.unreadable {
            writeln!(out, "document {} is not readable: {}", b.position, b.why)?;
        }
    }
    out.flush()?;
    if proven {
        Ok(())
    } else {
        Err(NotProven.into())
    }
}

/// One line per series: what the bundle proves of it.
fn series_line(
    name: &str,
    chain: &SeriesReport,
    proof: &SeriesProof,
    h: &laned::contract::bundle::Header,
    ok: bool,
) -> String {
    let days = if proof.closed.is_empty() {
        format!(
            "{}..{}: {} documents, no day closed",
            h.from, h.to, proof.in_range
        )
    } else {
        let uncertified: Vec<&str> = proof
            .closed
            .iter()
            .filter(|(n, _)| !proof.certified.contains_key(n))
            .map(|(_, d)| d.as_str())
            .collect();
        format!(
            "{}..{}: {} documents, {} days closed, {} certified{}",
            h.from,
            h.to,
            proof.in_range,
            proof.closed.len(),
            proof.certified.len(),
            if uncertified.is_empty() {
                String::new()
            } else {
                format!(" (not: {})", uncertified.join(", "))
            }
        )
    };
    if ok {
        return format!(
            "series {name}: PROVEN: {} documents held by the back-end, each acknowledged, \
             chain unbroken from the series' first document, receipts 1..{}{}; {days}",
            chain.documents + u64::try_from(chain.closings).unwrap_or(0),
            chain.last_receipt_no,
            closings(chain),
        );
    }
    let mut why = Vec::new();
    if !chain.intact() {
        why.push(line(name, chain).replacen(&format!("series {name}: "), "", 1));
    }
    if proof.acknowledged < proof.documents {
        why.push(format!(
            "{} of {} documents without an acknowledgement that holds",
            proof.documents - proof.acknowledged,
            proof.documents
        ));
    }
    if let Some(p) = proof.problems.first() {
        why.push(format!(
            "{} problem(s), the first at line {}: {}",
            proof.problems.len(),
            p.line,
            p.why
        ));
    }
    format!("series {name}: NOT PROVEN: {}; {days}", why.join("; "))
}

/// The bundle's lines through the journal's verifier (its documents) and
/// the bundle's checker (everything), streamed.
fn from_bundle(path: &std::path::Path) -> anyhow::Result<(VerifyOutcome, BundleReport)> {
    use std::io::BufRead;
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
    };
    let mut input = open()?;
    let mut first = vec![];
    input
        .read_until(b'\n', &mut first)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let not_a_bundle = |source| NotABundle {
        path: path.display().to_string(),
        source,
    };
    let mut checker = Checker::start(&first).map_err(not_a_bundle)?;
    let fetch = refetch(open()?);
    let mut offset = first.len() as u64;
    let outcome = {
        let checker = &mut checker;
        let next = chunks_of(&mut input, &mut offset, path, |line| {
            Ok(checker.line(line).map_err(not_a_bundle)? == Line::Document)
        });
        journal::verify_stream(next, envelope_of, fetch, 0)?
    };
    refuse_not_a_record(path, outcome.not_a_record)?;
    Ok((
        VerifyOutcome {
            series: outcome.series,
            unreadable: outcome.unreadable,
        },
        checker.finish(),
    ))
}

/// The documents that could not be read, as `--json` shows them.
fn unreadable_json(outcome: &VerifyOutcome) -> Vec<serde_json::Value> {
    outcome
        .unreadable
        .iter()
        .map(|b| json!({"position": b.position, "why": b.why.to_string()}))
        .collect()
}
