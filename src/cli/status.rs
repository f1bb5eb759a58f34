//! `laned status`: the lane at a glance, whether the daemon runs or not
//! (support needs it most when laned is down). While the daemon answers,
//! the report is its own `GET /v1/status`; when it does not, the same
//! report is made from the database, with the sync ceiling as the daemon
//! would judge it if it started now. Either way it leads with the lane's
//! worst trouble in the status page's words, and the exit code says the
//! verdict (6: someone must act, 7: sales are refused).

use std::io::Write;

use anyhow::Context;
use laned::common::clock::{Clock, SystemClock};
use laned::lane::config::{Config, ConfigArgs};
use laned::lane::status::{Facts, Report, Verdict};
use laned::lane::store::ReadOnly;
use serde_json::{Value, json};

use super::operator::{Probe, Troubled};

/// Options of `laned status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How long `laned status` waits for the daemon's answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = laned::lane::config::data_dir(&args.config)?;
    let db = ReadOnly::open(&dir)?;
    let probe = super::operator::runtime()?.block_on(super::operator::probe(&dir, PROBE_TIMEOUT));
    let (live, daemon) = match probe {
        Probe::Running { holder, status, .. } => {
            (status, json!({"running": true, "holder": holder}))
        }
        Probe::NotRunning { last } => (None, json!({"running": false, "holder": last})),
        Probe::Broken { holder, detail } => (
            None,
            json!({"running": false, "holder": holder, "problem": detail}),
        ),
    };
    // The daemon's own report when it answers (its API may want a token:
    // then, as when it is down, the database's).
    let (mut report, source) = match live {
        Some(r) => (r, "daemon"),
        None => {
            let r = gather(&db, &args.config).context("cannot read the lane database")?;
            (serde_json::to_value(r)?, "database")
        }
    };
    if let Some(o) = report.as_object_mut() {
        o.insert("source".into(), source.into());
        o.insert("database".into(), db.path().display().to_string().into());
        o.insert("daemon".into(), daemon);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", text(&report))?;
    }
    out.flush()?;
    let verdict =
        serde_json::from_value::<Verdict>(report["verdict"].clone()).unwrap_or(Verdict::Ok);
    let codes: Vec<&str> = report["troubles"]
        .as_array()
        .map(|ts| ts.iter().filter_map(|t| t["code"].as_str()).collect())
        .unwrap_or_default();
    match Troubled::of(verdict, codes) {
        Some(t) => Err(t.into()),
        None => Ok(()),
    }
}

pub(super) fn gather(db: &ReadOnly, args: &ConfigArgs) -> anyhow::Result<Report> {
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
    let report = Report::new(Facts {
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
        close_day_at: config.close_day_at,
        // The daemon is not running: nothing is scheduled.
        next_closing_at: None,
    });
    Ok(report)
}

/// The report for people: the troubles first, then the figures. Amounts
/// as the page shows them (minor units only in the JSON).
fn text(r: &Value) -> String {
    let mut s = String::new();
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let lane = str_of(&r["lane_id"]);
    let troubles = r["troubles"].as_array().cloned().unwrap_or_default();
    let mut it = troubles.iter();
    match it.next() {
        Some(t) => {
            s.push_str(&format!(
                "Lane {lane}: {}\n  {}\n",
                str_of(&t["headline"]),
                str_of(&t["action"])
            ));
            if let Some(d) = t["detail"].as_str() {
                s.push_str(&format!("  ({d})\n"));
            }
        }
        None => s.push_str(&format!(
            "Lane {lane}: Connected\n  Sales reach head office.\n"
        )),
    }
    for t in it {
        s.push_str(&format!(
            "Also: {}\n  {}\n",
            str_of(&t["headline"]),
            str_of(&t["action"])
        ));
        if let Some(d) = t["detail"].as_str() {
            s.push_str(&format!("  ({d})\n"));
        }
    }
    s.push('\n');
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<18} {v}\n"));
    let d = &r["daemon"];
    let daemon = match (
        d["running"].as_bool(),
        d["holder"].as_str(),
        d["problem"].as_str(),
    ) {
        (Some(true), Some(h), _) => format!("running: {h}"),
        (Some(true), None, _) => "running".to_owned(),
        (_, Some(h), Some(p)) => format!("not answering as this lane ({p}); lock file: {h}"),
        (_, Some(h), None) => format!("not running (the last one was: {h})"),
        _ => "not running".to_owned(),
    };
    line("daemon", &daemon);
    line(
        "state",
        &format!(
            "{} (verdict {}; read from the {})",
            str_of(&r["lane_state"]),
            str_of(&r["verdict"]),
            str_of(&r["source"])
        ),
    );
    line("database", &str_of(&r["database"]));
    if let Some(counts) = r["counts"].as_object() {
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        line("sales", &counts.join(", "));
    }
    let secs = |v: &Value| std::time::Duration::from_secs(v.as_u64().unwrap_or_default());
    if let Some(o) = r["oldest_pending"].as_object() {
        line(
            "oldest pending",
            &format!(
                "{} ({} ago)",
                o.get("recorded_at").map(str_of).unwrap_or_default(),
                EN.duration(secs(o.get("age_seconds").unwrap_or(&Value::Null)))
            ),
        );
    }
    if let Some(amounts) = r["pending_amount"].as_object().filter(|a| !a.is_empty()) {
        let amounts: Vec<String> = amounts
            .iter()
            .map(|(currency, minor)| {
                laned::contract::money::display(minor.as_i64().unwrap_or_default(), currency)
            })
            .collect();
        line("pending amount", &amounts.join(", "));
    }
    let b = &r["backend"];
    line(
        "last sync",
        b["last_success_at"].as_str().unwrap_or("never"),
    );
    if let Some(e) = b["last_error"].as_object() {
        line(
            "last error",
            &format!(
                "{}: {}",
                e.get("code").map(str_of).unwrap_or_default(),
                e.get("message").map(str_of).unwrap_or_default()
            ),
        );
    }
    let c = &r["ceiling"];
    line(
        "offline",
        &format!(
            "{} since the last successful exchange",
            EN.duration(secs(&c["offline_seconds"]))
        ),
    );
    if let (Some(rule), Some(_)) = (c["nearest_rule"].as_str(), c["remaining_seconds"].as_u64()) {
        line(
            "nearest limit",
            &format!("{rule} in {}", EN.hours(secs(&c["remaining_seconds"]))),
        );
    }
    s
}

/// Support reads this command in English, as the logs.
const EN: laned::lane::messages::Words =
    laned::lane::messages::Words(laned::lane::messages::Locale::En);
