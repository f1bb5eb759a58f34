//! `laned status`: the lane at a glance from its database, whether the
//! daemon runs or not (support needs it most when laned is down).

use std::io::Write;

use anyhow::Context;
use laned::lane::ceiling::OfflineClock;
use laned::lane::config::ConfigArgs;
use laned::lane::store::ReadOnly;
use serde_json::{Value, json};

/// Options of `laned status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = laned::lane::config::data_dir(&args.config)?;
    let db = ReadOnly::open(&dir)?;
    let report = gather(&db).context("cannot read the lane database")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{report:#}")?;
    } else {
        write!(out, "{}", text(&report))?;
    }
    Ok(())
}

fn gather(db: &ReadOnly) -> anyhow::Result<Value> {
    let now = jiff::Timestamp::now();
    let c = db.status_counts()?;
    let d = db.drain_state()?;
    let cp = db.checkpoint()?;
    // As the daemon would count it if it started now: the checkpoint plus
    // the wall time since (a running daemon checkpoints every minute).
    let clock = OfflineClock::resume(
        &cp,
        jiff::tz::TimeZone::system(),
        now,
        Default::default(),
        laned::common::clock::Clock::boot(&laned::common::clock::SystemClock::new()),
    );
    let oldest = c.oldest_pending_recorded_at.as_ref().map(|at| {
        let age = at
            .parse::<jiff::Timestamp>()
            .map(|t| now.duration_since(t).as_secs().max(0))
            .unwrap_or(0);
        json!({"recorded_at": at, "age_seconds": age})
    });
    let problem = |code: &Option<String>, message: &Option<String>| {
        code.as_ref()
            .map(|c| json!({"code": c, "message": message.clone().unwrap_or_default()}))
    };
    Ok(json!({
        "lane_id": db.lane_id()?,
        "database": db.path().display().to_string(),
        "counts": c.by_state,
        "oldest_pending": oldest,
        "pending_amount": c.pending_amount,
        "last_receipt_no": c.last_receipt_no,
        "backend": {
            "last_success_at": d.last_success_at,
            "last_attempt_at": d.last_attempt_at,
            "last_error": problem(&d.last_error_code, &d.last_error),
            "consecutive_failures": d.consecutive_failures,
            "fault": problem(&d.fault_code, &d.fault_message),
            "next_attempt_at": d.next_attempt_at,
        },
        "restored_from_old_copy": db.restore_guard()?,
        "offline": {
            "seconds": clock.offline().as_secs(),
            "checkpoint_at": cp.at.map(laned::common::time::fmt_ts),
            "online_at_checkpoint": cp.online,
            "clock_anomalies": clock.anomalies(),
            "downtime_unknown": clock.downtime_unknown(),
        },
    }))
}

fn text(r: &Value) -> String {
    let mut s = String::new();
    let line = |s: &mut String, k: &str, v: String| s.push_str(&format!("{k:<18} {v}\n"));
    line(
        &mut s,
        "lane",
        r["lane_id"].as_str().unwrap_or("?").to_owned(),
    );
    line(
        &mut s,
        "database",
        r["database"].as_str().unwrap_or("?").to_owned(),
    );
    let counts = r["counts"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    line(&mut s, "sales", counts);
    if let Some(o) = r["oldest_pending"].as_object() {
        line(
            &mut s,
            "oldest pending",
            format!(
                "{} ({} s ago)",
                o["recorded_at"].as_str().unwrap_or("?"),
                o["age_seconds"]
            ),
        );
    }
    if let Some(m) = r["pending_amount"].as_object().filter(|m| !m.is_empty()) {
        let amounts: Vec<String> = m.iter().map(|(k, v)| format!("{v} {k}")).collect();
        line(
            &mut s,
            "pending amount",
            format!("{} (minor units)", amounts.join(", ")),
        );
    }
    let b = &r["backend"];
    line(
        &mut s,
        "last sync",
        b["last_success_at"].as_str().unwrap_or("never").to_owned(),
    );
    if let Some(e) = b["last_error"].as_object() {
        line(
            &mut s,
            "last error",
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            ),
        );
    }
    if let Some(f) = b["fault"].as_object() {
        line(
            &mut s,
            "delivery paused",
            format!(
                "{}: {}",
                f["code"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or("")
            ),
        );
    }
    line(
        &mut s,
        "offline",
        format!(
            "{} s since the last successful exchange (checkpoint {})",
            r["offline"]["seconds"],
            r["offline"]["checkpoint_at"].as_str().unwrap_or("none")
        ),
    );
    if r["offline"]["downtime_unknown"] == true {
        line(
            &mut s,
            "SALES REFUSED",
            "the till restarted with its clock behind the last checkpoint: how long it was off \
             is unknown until head office is reached"
                .into(),
        );
    }
    if !r["restored_from_old_copy"].is_null() {
        line(
            &mut s,
            "SALES REFUSED",
            "restored from an old copy; see laned status --json and the README".into(),
        );
    }
    s
}
