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

/// The export's envelopes, line by line, through the verifier: read a
/// chunk of lines, parse and hash them on every core, check them in order
/// (streamed: memory holds one chunk). A void's voided document is read
/// again from its line.
fn from_file(path: &std::path::Path) -> anyhow::Result<VerifyOutcome> {
    use std::io::{BufRead, Seek};
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
    };
    let mut input = open()?;
    let mut again = open()?;
    let mut fetch = |offset: u64| -> Option<Vec<u8>> {
        let mut line = String::new();
        again.seek(std::io::SeekFrom::Start(offset)).ok()?;
        again.read_line(&mut line).ok()?;
        serde_json::from_str::<Record>(&line)
            .ok()
            .map(|r| r.envelope_text.into_bytes())
    };
    let (mut offset, mut number) = (0u64, 0u64);
    let mut line = String::new();
    let next = |mut chunk: Chunk| -> anyhow::Result<Chunk> {
        while chunk.len() < 4096 {
            line.clear();
            let read = input
                .read_line(&mut line)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            let at = offset;
            offset += read as u64;
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            let rec: Record = serde_json::from_str(&line).map_err(|e| NotAnExport {
                path: path.display().to_string(),
                line: number,
                why: e.to_string(),
            })?;
            chunk.push(at, rec.envelope_text.as_bytes());
        }
        Ok(chunk)
    };
    let (series, unreadable) = journal::verify_stream(next, &mut fetch, 0)?;
    Ok(VerifyOutcome { series, unreadable })
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
