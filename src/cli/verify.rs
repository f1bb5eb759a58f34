//! `laned verify`: the fiscal journal checked from the lane's database, or
//! from an NDJSON export (`--file`, each line's `envelope_text`), with
//! nothing else (docs/journal.md): every link of every series' chain, every
//! grand total, receipt numbers exactly 1..n. One line per series; the
//! first broken document named, and exit code 8, when one does not hold.
//! Reads only.

use std::io::Write;

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
    #[arg(long, value_name = "FILE")]
    file: Option<std::path::PathBuf>,
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
        let unreadable: Vec<_> = outcome
            .unreadable
            .iter()
            .map(|b| json!({"position": b.position, "why": b.why.to_string()}))
            .collect();
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
    use std::io::{BufRead, Seek};
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
    };
    let mut input = open()?;
    let mut again = open()?;
    let fetch = move |offset: u64| -> Option<Vec<u8>> {
        let mut line = vec![];
        again.seek(std::io::SeekFrom::Start(offset)).ok()?;
        again.read_until(b'\n', &mut line).ok()?;
        envelope_of(&line).ok().map(std::borrow::Cow::into_owned)
    };
    let mut offset = 0u64;
    let mut line = vec![];
    let next = |mut chunk: Chunk| -> anyhow::Result<Chunk> {
        while chunk.len() < 4096 {
            line.clear();
            let read = input
                .read_until(b'\n', &mut line)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            let at = offset;
            offset += read as u64;
            if !line.trim_ascii().is_empty() {
                chunk.push(at, &line);
            }
        }
        Ok(chunk)
    };
    let outcome = journal::verify_stream(next, envelope_of, fetch, 0)?;
    if let Some(bad) = outcome.not_a_record {
        return Err(NotAnExport {
            path: path.display().to_string(),
            line: line_at(path, bad.locator)?,
            why: bad.why,
        }
        .into());
    }
    Ok(VerifyOutcome {
        series: outcome.series,
        unreadable: outcome.unreadable,
    })
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
