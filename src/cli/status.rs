//! `laned status`: the lane at a glance from its database, whether the
//! daemon runs or not (support needs it most when laned is down). The
//! report is the one `GET /v1/status` serves, with the sync ceiling as the
//! daemon would judge it if it started now.

use std::io::Write;

use anyhow::Context;
use laned::common::clock::{Clock, SystemClock};
use laned::lane::config::{Config, ConfigArgs};
use laned::lane::status::{Facts, Report};
use laned::lane::store::ReadOnly;
use serde::Serialize;

/// Options of `laned status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The report, and where it was read from.
#[derive(Serialize)]
struct FromDatabase {
    database: String,
    #[serde(flatten)]
    report: Report,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = laned::lane::config::data_dir(&args.config)?;
    let db = ReadOnly::open(&dir)?;
    let report = gather(&db, &args.config).context("cannot read the lane database")?;
    let report = FromDatabase {
        database: db.path().display().to_string(),
        report,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", text(&report))?;
    }
    Ok(())
}

fn gather(db: &ReadOnly, args: &ConfigArgs) -> anyhow::Result<Report> {
    let lane_id = db.lane_id()?.unwrap_or_default();
    // The limits and time zone the daemon runs with. A configuration that
    // does not load (often why the daemon is down) must not hide the
    // lane's figures: the defaults stand in, and the reader is told.
    let config = super::operator::config_for(args, &lane_id).or_else(|e| {
        eprintln!(
            "laned status: the configuration does not load ({e:#}); the sync ceiling is \
             judged with the default limits"
        );
        Config::defaults(&lane_id, db.path().parent().unwrap_or(db.path()))
    })?;
    let enforced = config.backend_url.is_some();
    let clock = SystemClock::new();
    let now = clock.wall();
    let snapshot = laned::lane::guard::assess(
        &db.checkpoint()?,
        db.oldest_unsent()?,
        config.ceiling.limits,
        config.ceiling.time_zone.clone(),
        enforced,
        &clock,
    );
    Ok(Report::new(Facts {
        lane_id,
        series: config.series.clone(),
        counts: db.status_counts()?,
        backend_url: config.backend_url.clone(),
        // Without a back-end configured the drain's record still shows,
        // if it ever tried one.
        drain: Some(db.drain_state()?).filter(|d| enforced || d.last_attempt_at.is_some()),
        restore: db.restore_guard()?,
        snapshot,
        now,
        uptime: None,
    }))
}

fn text(r: &FromDatabase) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<18} {v}\n"));
    let (db, r) = (&r.database, &r.report);
    line("lane", &r.lane_id);
    let state = r.lane_state.as_str();
    match r.lane_state {
        laned::lane::ceiling::LaneState::Suspended => line(
            "state",
            &format!("{state}: {}", laned::lane::guard::reason(&r.snapshot)),
        ),
        _ => line("state", state),
    }
    line("database", db);
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    line("sales", &counts.join(", "));
    if let Some(o) = &r.oldest_pending {
        line(
            "oldest pending",
            &format!("{} ({} s ago)", o.recorded_at, o.age_seconds),
        );
    }
    if !r.pending_amount.is_empty() {
        // As the page shows amounts; minor units only in the JSON.
        let amounts: Vec<String> = r
            .pending_amount
            .iter()
            .map(|(currency, minor)| laned::contract::money::display(*minor, currency))
            .collect();
        line("pending amount", &amounts.join(", "));
    }
    let b = r.backend.as_ref();
    line(
        "last sync",
        b.and_then(|b| b.last_success_at.as_deref())
            .unwrap_or("never"),
    );
    if let Some(e) = b.and_then(|b| b.last_error.as_ref()) {
        line("last error", &format!("{}: {}", e.code, e.message));
    }
    if let Some(f) = b.and_then(|b| b.fault.as_ref()) {
        line("delivery paused", &format!("{}: {}", f.code, f.message));
    }
    line(
        "offline",
        &format!(
            "{} s since the last successful exchange",
            r.ceiling.offline_seconds
        ),
    );
    if r.ceiling.downtime_unknown {
        line(
            "SALES REFUSED",
            "the till restarted with its clock behind the last checkpoint: how long it was off \
             is unknown until head office is reached",
        );
    }
    if r.restored_from_old_copy.is_some() {
        line(
            "SALES REFUSED",
            "restored from an old copy; see laned status --json and the README",
        );
    }
    s
}
