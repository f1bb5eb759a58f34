//! `laned export`: every sale of a state (or all) with its full envelope,
//! state, attempts and last error, as NDJSON or CSV, streamed from one
//! consistent snapshot of the database. Never writes to the lane.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use laned::lane::config::ConfigArgs;
use laned::lane::store::closing::ClosingRow;
use laned::lane::store::{Attempt, ReadOnly, SaleRow, SaleState, StoreError};
use serde_json::Value;

/// Options of `laned export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which sales: stuck, pending, posted, resolved or all.
    #[arg(long, default_value = "stuck")]
    state: String,
    /// Only sales recorded at or after this time (RFC 3339, UTC or offset).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: Format,
    /// Write here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// One JSON object per line.
    Ndjson,
    /// A header row, then one row per sale.
    Csv,
}

const CSV_HEADER: [&str; 16] = [
    "seq",
    "transaction_id",
    "receipt",
    "kind",
    "references",
    "state",
    "recorded_at",
    "business_date",
    "currency",
    "total",
    "doc_no",
    "posted_at",
    "attempts",
    "last_error_code",
    "last_error",
    "envelope",
];

/// A spreadsheet treats a cell starting with one of these as a formula:
/// prefix it with an apostrophe so it is shown as text (CSV injection).
pub fn csv_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn record(r: &SaleRow, attempts: &[Attempt]) -> anyhow::Result<Value> {
    let envelope: Value =
        serde_json::from_slice(&r.body).context("a stored envelope is unreadable")?;
    // The summary's fields, less the ones the export leaves out, with the
    // attempt history and the envelope.
    let mut v = serde_json::to_value(r.summary()).context("a sale cannot be shown as JSON")?;
    if let Value::Object(m) = &mut v {
        for k in ["series", "receipt_no", "next_attempt_at"] {
            m.remove(k);
        }
        m.insert("attempts".into(), serde_json::to_value(attempts)?);
        m.insert("envelope".into(), envelope);
        // The envelope's exact bytes (UTF-8 JSON) as text: what the fiscal
        // journal's hashes are taken over (docs/journal.md), so that an
        // export verifies with nothing else.
        m.insert(
            "envelope_text".into(),
            String::from_utf8(r.body.clone())
                .context("a stored envelope is not UTF-8")?
                .into(),
        );
    }
    Ok(v)
}

/// A day closing as an export record: its place, state and exact bytes.
fn closing_record(c: &ClosingRow) -> anyhow::Result<Value> {
    let text = String::from_utf8(c.body.clone()).context("a stored closing is not UTF-8")?;
    let envelope: Value = serde_json::from_str(&text).context("a stored closing is unreadable")?;
    Ok(serde_json::json!({
        "seq": c.seq,
        "transaction_id": c.transaction_id,
        "kind": "closing",
        "closing_no": c.closing_no,
        "state": c.state,
        "recorded_at": c.recorded_at,
        "business_date": c.business_date,
        "doc_no": c.doc_no,
        "last_error": c.last_error_code.as_ref().map(|code| serde_json::json!({
            "code": code, "message": c.last_error,
        })),
        "envelope": envelope,
        "envelope_text": text,
    }))
}

enum Out {
    Ndjson(std::io::BufWriter<Box<dyn Write>>),
    Csv(Box<csv::Writer<Box<dyn Write>>>),
}

/// An export failure, wrapping the store's or the writer's.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let state = match args.state.as_str() {
        "all" => None,
        s => Some(SaleState::parse(s).ok_or_else(|| {
            super::sales::BadArgument(format!(
                "--state {s:?}: use stuck, pending, posted, resolved or all"
            ))
        })?),
    };
    let since = match &args.since {
        None => None,
        Some(t) => Some(laned::common::time::fmt_ts(
            t.parse::<jiff::Timestamp>().map_err(|_| {
                super::sales::BadArgument(format!(
                    "--since {t:?}: use a time like 2026-11-22T00:00:00Z"
                ))
            })?,
        )),
    };
    let db = ReadOnly::open(&laned::lane::config::data_dir(&args.config)?)?;
    let total = db.export_count(state, since.as_deref())?;
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    // csv::Writer buffers and flushes as it goes: memory stays flat.
    let mut out = match args.format {
        Format::Ndjson => Out::Ndjson(std::io::BufWriter::new(sink)),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(sink);
            w.write_record(CSV_HEADER).context("cannot write CSV")?;
            Out::Csv(Box::new(w))
        }
    };
    // A progress bar only for a person watching, and never on stdout.
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // With every state, the day closings come too, in their place in lane
    // order: the export is then the whole fiscal journal (docs/journal.md).
    let mut closings: std::collections::VecDeque<ClosingRow> = if state.is_none() {
        db.closings()?
            .into_iter()
            .filter(|c| since.as_deref().is_none_or(|t| c.recorded_at.as_str() >= t))
            .collect()
    } else {
        Default::default()
    };
    let mut write = |rec: Value, attempts: usize| -> Result<(), ExportError> {
        match &mut out {
            Out::Ndjson(out) => {
                serde_json::to_writer(&mut *out, &rec).context("cannot write")?;
                out.write_all(b"\n").context("cannot write")?;
            }
            Out::Csv(w) => {
                let text = |v: &Value| match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let row: Vec<String> = [
                    text(&rec["seq"]),
                    text(&rec["transaction_id"]),
                    text(&rec["receipt"]),
                    text(&rec["kind"]),
                    text(&rec["references"]),
                    text(&rec["state"]),
                    text(&rec["recorded_at"]),
                    text(&rec["business_date"]),
                    text(&rec["currency"]),
                    text(&rec["total"]),
                    text(&rec["doc_no"]),
                    text(&rec["posted_at"]),
                    attempts.to_string(),
                    text(&rec["last_error"]["code"]),
                    text(&rec["last_error"]["message"]),
                    // The exact bytes, as the journal hashes them.
                    text(&rec["envelope_text"]),
                ]
                .iter()
                .map(|c| csv_cell(c))
                .collect();
                w.write_record(&row).context("cannot write CSV")?;
            }
        }
        Ok(())
    };
    let n = db.export(
        state,
        since.as_deref(),
        |sale, attempts| -> Result<(), ExportError> {
            while closings.front().is_some_and(|c| c.seq < sale.seq) {
                if let Some(c) = closings.pop_front() {
                    write(closing_record(&c)?, 0)?;
                }
            }
            write(record(sale, attempts)?, attempts.len())?;
            bar.inc(1);
            Ok(())
        },
    )?;
    for c in closings {
        write(closing_record(&c)?, 0)?;
    }
    match &mut out {
        Out::Ndjson(o) => o.flush(),
        Out::Csv(w) => w.flush(),
    }
    .context("cannot write")?;
    bar.finish_and_clear();
    if args.output.is_some() {
        eprintln!("laned: exported {n} sales");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_a_spreadsheet_would_run_are_prefixed() {
        for (cell, shown) in [
            ("=1+1", "'=1+1"),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2", "'-2"),
            ("@cmd", "'@cmd"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("a=1", "a=1"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), shown);
        }
    }
}
