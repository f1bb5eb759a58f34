//! `laned backup -o FILE`: a consistent, checked copy of the lane database
//! (SQLite's online backup), whether the daemon runs or not. Never writes
//! to the lane.

use std::path::PathBuf;

use laned::lane::config::ConfigArgs;
use laned::lane::store::ReadOnly;

/// Options of `laned backup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Where to write the copy (must not exist yet).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let db = ReadOnly::open(&laned::lane::config::data_dir(&args.config)?)?;
    let s = db.backup(&args.output)?;
    println!(
        "laned: backed up lane {} ({} sales, schema version {}, {} bytes) to {}; integrity check ok",
        s.lane_id.as_deref().unwrap_or("?"),
        s.sales,
        s.schema_version,
        s.bytes,
        s.path.display()
    );
    Ok(())
}
