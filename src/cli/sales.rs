//! `laned sales list` and `laned sales show`: find and explain sales from
//! the database, whether the daemon runs or not.

use std::io::Write;

use anyhow::Context;
use laned::contract::Envelope;
use laned::lane::config::ConfigArgs;
use laned::lane::store::{ListFilter, ReadOnly, SaleRow, SaleState, receipt_label};
use serde_json::Value;

/// Options of `laned sales`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Sales in lane order, oldest first.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only sales in this state: pending, posted, stuck or resolved.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON (one object per line) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One sale, with its document and every delivery attempt, as JSON.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        /// The transaction id.
        id: String,
    },
}

/// A bad argument: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(pub String);

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::List {
            config,
            state,
            limit,
            json,
        } => {
            let db = ReadOnly::open(&laned::lane::config::data_dir(&config)?)?;
            let state = match state.as_deref() {
                None => None,
                Some(s) => Some(SaleState::parse(s).ok_or_else(|| {
                    BadArgument(format!(
                        "--state {s:?}: use pending, posted, stuck or resolved"
                    ))
                })?),
            };
            if !(1..=1_000_000).contains(&limit) {
                return Err(BadArgument("--limit must be 1 to 1000000".into()).into());
            }
            let rows = db
                .list(&ListFilter {
                    state,
                    after: 0,
                    limit,
                })
                .context("cannot list the sales")?;
            if json {
                for r in &rows {
                    writeln!(out, "{}", summary(r))?;
                }
            } else {
                writeln!(
                    out,
                    "{:>7}  {:<14} {:<9} {:<24} {:>12}  {:<36}  last error",
                    "seq", "receipt", "state", "recorded at", "total", "transaction id"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:>7}  {:<14} {:<9} {:<24} {:>8} {}  {:<36}  {}",
                        r.seq,
                        receipt_label(&r.series, r.receipt_no),
                        r.state.as_str(),
                        r.recorded_at,
                        r.total,
                        r.currency,
                        r.transaction_id,
                        r.last_error_code.as_deref().unwrap_or("")
                    )?;
                }
            }
        }
        Command::Show { config, id } => {
            let db = ReadOnly::open(&laned::lane::config::data_dir(&config)?)?;
            let uuid = laned::contract::sale::parse_v4(&id).ok_or_else(|| {
                BadArgument(format!("{id:?} is not a transaction id (a v4 UUID)"))
            })?;
            let Some(r) = db.sale(uuid)? else {
                anyhow::bail!("no sale {uuid} is stored on this lane");
            };
            let mut v = summary(&r);
            let envelope: Value =
                serde_json::from_slice(&r.body).context("the stored envelope is unreadable")?;
            // The envelope exactly as the lane sends it.
            let _: Envelope<Value> = serde_json::from_value(envelope.clone())
                .context("the stored envelope is not a sale envelope")?;
            v["envelope"] = envelope;
            v["attempt_history"] = serde_json::to_value(db.attempts(r.seq)?)?;
            writeln!(out, "{v:#}")?;
        }
    }
    Ok(())
}

/// A sale as `GET /v1/sales` lists it.
fn summary(r: &SaleRow) -> Value {
    serde_json::to_value(r.summary()).unwrap_or_default()
}
