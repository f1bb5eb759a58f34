//! `laned doctor`: is this lane healthy, and if not, what to fix. Checks
//! the configuration, the data directory and the free space on its disk,
//! the database (schema and `PRAGMA integrity_check`), who holds the
//! instance lock and whether that daemon answers, the admin token, the
//! back-end (reachable, accepts the lane's token) and the clock against the
//! back-end's. Reads only.

use std::path::Path;
use std::time::Duration;

use laned::lane::config::ConfigArgs;
use laned::lane::drain::{BackendClient, DeliveryOutcome};
use laned::lane::messages::{Locale, Words};
use laned::lane::status::Verdict as LaneVerdict;
use laned::lane::store::ReadOnly;
use serde::Serialize;
use serde_json::Value;

use super::operator::{Probe, Troubled};

/// Options of `laned doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    verdict: Verdict,
    detail: String,
}

/// Some checks failed. Exit code 1, after the report.
#[derive(Debug, thiserror::Error)]
#[error("{0} check(s) failed")]
struct Failed(usize);

/// A clock this far from the back-end's is worth a warning.
const CLOCK_WARN: Duration = Duration::from_secs(60);

/// Below this much free space for the database, doctor fails: a sale takes
/// about a kilobyte, but SQLite's write-ahead log and a checkpoint need room
/// too, and a full disk stops the till recording sales (`storage_full`).
const DISK_FAIL: u64 = 64 << 20;
/// Below this, doctor warns: room for weeks of sales at most, and not for
/// a backup beside the database.
const DISK_WARN: u64 = 1 << 30;

/// The checks made so far, and the lane's troubles among them.
#[derive(Default)]
struct Checks(Vec<Check>, Option<Troubled>);

impl Checks {
    fn add(&mut self, name: &'static str, (verdict, detail): (Verdict, String)) {
        self.0.push(Check {
            name,
            verdict,
            detail,
        });
    }
}

/// The lane's troubles, as the daemon sees them (its `/v1/status`) or, when
/// none answers, as the database shows them: each is a check, failed when
/// someone must act (a stuck sale, delivery paused, the ceiling under an
/// hour away) or sales are refused.
fn lane(checks: &mut Checks, args: &ConfigArgs, db: Option<&ReadOnly>, live: Option<&Value>) {
    let (verdict, troubles): (LaneVerdict, Vec<(String, LaneVerdict, String)>) = match live {
        Some(status) => {
            let parse = |v: &Value| {
                serde_json::from_value::<LaneVerdict>(v.clone()).unwrap_or(LaneVerdict::Ok)
            };
            let troubles = status["troubles"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            (
                                t["code"].as_str().unwrap_or("?").to_owned(),
                                parse(&t["severity"]),
                                format!(
                                    "{}. {}",
                                    t["headline"].as_str().unwrap_or_default(),
                                    t["action"].as_str().unwrap_or_default()
                                ),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (parse(&status["verdict"]), troubles)
        }
        None => {
            let Some(db) = db else { return };
            match super::status::gather(db, args) {
                Ok(r) => {
                    let en = Words(Locale::En);
                    let troubles = r
                        .troubles
                        .iter()
                        .map(|t| {
                            (
                                t.code.to_owned(),
                                t.severity,
                                format!("{}. {}", en.say(&t.headline), en.say(&t.action)),
                            )
                        })
                        .collect();
                    (r.verdict, troubles)
                }
                Err(e) => {
                    checks.add("lane", (Verdict::Fail, format!("{e:#}")));
                    return;
                }
            }
        }
    };
    if troubles.is_empty() {
        checks.add(
            "lane",
            (Verdict::Ok, "no trouble: sales reach head office".into()),
        );
    }
    for (code, severity, text) in &troubles {
        let v = match severity {
            LaneVerdict::Ok | LaneVerdict::Info => Verdict::Ok,
            LaneVerdict::Warning => Verdict::Warn,
            LaneVerdict::Attention | LaneVerdict::Stopped => Verdict::Fail,
        };
        checks.add("lane", (v, format!("{code}: {text}")));
    }
    checks.1 = Troubled::of(verdict, troubles.iter().map(|t| t.0.as_str()));
}

/// Two back-end URLs that name the same place (the daemon shows its URL
/// with a final `/`).
fn same_url(a: Option<&str>, b: Option<&str>) -> bool {
    let trim = |u: Option<&str>| u.map(|u| u.trim_end_matches('/').to_owned());
    trim(a) == trim(b)
}

/// The figures the status report keeps equal a full recount of the sales.
fn figures(checks: &mut Checks, db: &ReadOnly) {
    let verdict = match db.tally_mismatches() {
        Ok(m) if m.is_empty() => (
            Verdict::Ok,
            "the kept counts and amounts equal a full recount".into(),
        ),
        Ok(m) => (
            Verdict::Fail,
            format!(
                "the kept counts differ from a full recount ({}); the status page and \
                 /metrics show wrong figures: report this, with a backup of the database",
                m.iter()
                    .map(|(kept, counted)| format!(
                        "{} {}: kept {} / {}, counted {} / {}",
                        kept.state, kept.currency, kept.n, kept.net, counted.n, counted.net
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(e) => (Verdict::Fail, e.to_string()),
    };
    checks.add("figures", verdict);
}

/// How long doctor waits for the daemon's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut checks = Checks::default();
    let rt = super::operator::runtime()?;
    checks.add(
        "version",
        (Verdict::Ok, format!("laned {}", laned::VERSION)),
    );
    let dir = match laned::lane::config::data_dir(&args.config) {
        Ok(d) => d,
        Err(e) => {
            checks.add("config", (Verdict::Fail, format!("{e}")));
            return finish(checks, args.json);
        }
    };
    checks.add("data directory", dir_verdict(&dir));
    if let Some(free) = free_space(&dir) {
        checks.add("disk", disk_verdict(free));
    }
    let (db, lane_id) = database(&mut checks, &dir);
    let probe = rt.block_on(super::operator::probe(&dir, PROBE_TIMEOUT));
    let live = match &probe {
        Probe::Running { status, .. } => status.clone(),
        _ => None,
    };
    let config = configuration(&mut checks, &args.config, lane_id.as_deref(), live.as_ref());
    checks.add("daemon", daemon(&probe, lane_id.as_deref()));
    checks.add(
        "admin token",
        private_file(&dir.join(laned::lane::daemon::ADMIN_TOKEN_FILE)),
    );
    if let Some(c) = &config {
        backend(&mut checks, &rt, c, live.as_ref());
    }
    if let Some(db) = &db {
        figures(&mut checks, db);
        backlog(&mut checks, db);
    }
    lane(&mut checks, &args.config, db.as_ref(), live.as_ref());
    finish(checks, args.json)
}

/// The database: it opens (schema known), and SQLite's integrity check;
/// with its lane id.
fn database(checks: &mut Checks, dir: &Path) -> (Option<ReadOnly>, Option<String>) {
    let db = match ReadOnly::open(dir) {
        Ok(db) => db,
        Err(e) => {
            checks.add("database", (Verdict::Fail, e.to_string()));
            return (None, None);
        }
    };
    let lane_id = db.lane_id().ok().flatten();
    let verdict = match db.integrity_check() {
        Ok(p) if p.is_empty() => (
            Verdict::Ok,
            format!(
                "{} (lane {}, schema version {}): integrity check ok",
                db.path().display(),
                lane_id.as_deref().unwrap_or("?"),
                laned::lane::store::latest_schema_version()
            ),
        ),
        Ok(p) => (
            Verdict::Fail,
            format!("integrity check found: {}; restore a backup", p.join("; ")),
        ),
        Err(e) => (Verdict::Fail, e.to_string()),
    };
    checks.add("database", verdict);
    (Some(db), lane_id)
}

/// The configuration, as the daemon would load it, and that it is this
/// database's lane.
fn configuration(
    checks: &mut Checks,
    args: &ConfigArgs,
    lane_id: Option<&str>,
    live: Option<&Value>,
) -> Option<laned::lane::config::Config> {
    let config = match lane_id {
        Some(id) => super::operator::config_for(args, id),
        None => {
            laned::lane::config::Config::load(args, |k| std::env::var(k).ok()).map_err(Into::into)
        }
    };
    match config {
        Ok(c) => {
            let from = args
                .config_path()
                .map_or("flags and LANED_* variables".into(), |p| {
                    p.display().to_string()
                });
            // The running daemon's back-end, when this command's
            // configuration is not the one it runs with.
            let theirs = live.and_then(|s| s["backend"]["url"].as_str());
            let verdict = match lane_id.filter(|id| *id != c.lane_id) {
                Some(id) => (
                    Verdict::Fail,
                    format!(
                        "lane id {} is configured, but the database is lane {id}",
                        c.lane_id
                    ),
                ),
                None if live.is_some() && !same_url(theirs, c.backend_url.as_deref()) => (
                    Verdict::Warn,
                    format!(
                        "{from} names back-end {}, but the running daemon delivers to {}: this \
                         command does not read the daemon's configuration (pass --config with \
                         the file the service uses); the back-end is checked as the daemon has it",
                        c.backend_url.as_deref().unwrap_or("none"),
                        theirs.unwrap_or("none")
                    ),
                ),
                None => (Verdict::Ok, format!("{from}: lane {}", c.lane_id)),
            };
            checks.add("config", verdict);
            Some(c)
        }
        Err(e) => {
            checks.add("config", (Verdict::Fail, format!("{e:#}")));
            None
        }
    }
}

/// The back-end: reachable, accepting the lane's token; and the clock
/// against the back-end's.
fn backend(
    checks: &mut Checks,
    rt: &tokio::runtime::Runtime,
    c: &laned::lane::config::Config,
    live: Option<&Value>,
) {
    // The running daemon's back-end wins over this command's idea of it.
    let url = match live {
        Some(s) => s["backend"]["url"].as_str().map(str::to_owned),
        None => c.backend_url.clone(),
    };
    let Some(url) = &url else {
        checks.add(
            "back-end",
            (
                Verdict::Warn,
                "no backend_url is configured: sales are kept on this till only".into(),
            ),
        );
        return;
    };
    let client = match BackendClient::new(
        url,
        &c.lane_id,
        c.drain.backend_token.clone(),
        c.drain.request_timeout,
    ) {
        Ok(client) => client,
        Err(e) => {
            checks.add("back-end", (Verdict::Fail, e.to_string()));
            return;
        }
    };
    let now = jiff::Timestamp::now();
    match rt.block_on(client.heartbeat(now)) {
        Ok(hb) => {
            checks.add(
                "back-end",
                (
                    Verdict::Ok,
                    format!("{url} answers and accepts the lane's token"),
                ),
            );
            checks.add("clock", clock(now, &hb.server_time));
        }
        Err(a) => {
            let (code, message) = match &a.outcome {
                DeliveryOutcome::LaneFault { code, message }
                | DeliveryOutcome::Stuck { code, message }
                | DeliveryOutcome::Retry { code, message, .. } => (code.clone(), message.clone()),
                DeliveryOutcome::Posted { .. } => {
                    ("unexpected".into(), "an unexpected answer".into())
                }
            };
            let what = match code.as_str() {
                "unauthorized" => "refuses the lane's token",
                "forbidden" => "does not allow this lane",
                "connect" | "timeout" | "network" => "cannot be reached",
                _ => "answers with an error",
            };
            checks.add(
                "back-end",
                (Verdict::Fail, format!("{url} {what}: {message} ({code})")),
            );
        }
    }
}

/// The backlog, and the till's clock history.
fn backlog(checks: &mut Checks, db: &ReadOnly) {
    if let Ok(c) = db.status_counts() {
        let stuck = c.by_state.get("stuck").copied().unwrap_or(0);
        let pending = c.by_state.get("pending").copied().unwrap_or(0);
        // Stuck sales fail the "lane" check; this line gives the figures.
        checks.add(
            "backlog",
            (
                Verdict::Ok,
                format!("{pending} pending, {stuck} stuck (laned sales list --state stuck)"),
            ),
        );
    }
    if let Ok(cp) = db.checkpoint()
        && cp.anomalies.count > 0
    {
        checks.add(
            "clock history",
            (
                Verdict::Warn,
                format!(
                    "the till's clock was set back {} time(s); the offline time ignores it",
                    cp.anomalies.count
                ),
            ),
        );
    }
}

/// Prints the checks; exit code 7 when the lane refuses sales, else 1
/// when a check failed, else 6 when the lane needs attention.
fn finish(checks: Checks, json: bool) -> anyhow::Result<()> {
    let Checks(checks, troubled) = checks;
    if json {
        let doc = serde_json::json!({
            "checks": checks,
            "lane_verdict": troubled.as_ref().map_or("ok", |t| t.verdict.as_str()),
        });
        println!("{doc:#}");
    } else {
        for c in &checks {
            let mark = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
            };
            println!("{mark}  {:<14} {}", c.name, c.detail);
        }
    }
    let lane_checks = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail && c.name == "lane")
        .count();
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    match troubled {
        Some(t) if t.verdict == LaneVerdict::Stopped => Err(t.into()),
        _ if failed > lane_checks => Err(Failed(failed).into()),
        Some(t) => Err(t.into()),
        None => Ok(()),
    }
}

fn dir_verdict(dir: &Path) -> (Verdict, String) {
    match std::fs::metadata(dir) {
        Err(e) => (Verdict::Fail, format!("{}: {e}", dir.display())),
        Ok(m) if !m.is_dir() => (
            Verdict::Fail,
            format!("{} is not a directory", dir.display()),
        ),
        Ok(_m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = _m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return (
                        Verdict::Warn,
                        format!(
                            "{} is {mode:o}: others can read the sales (laned sets 700 at start)",
                            dir.display()
                        ),
                    );
                }
            }
            (Verdict::Ok, dir.display().to_string())
        }
    }
}

/// Bytes an unprivileged writer may still use on `dir`'s filesystem, where
/// the platform can tell.
fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(dir)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

fn disk_verdict(free: u64) -> (Verdict, String) {
    let shown = if free >= 1_000_000_000 {
        format!("{:.1} GB free for the sales database", free as f64 / 1e9)
    } else {
        format!("{:.1} MB free for the sales database", free as f64 / 1e6)
    };
    if free < DISK_FAIL {
        (
            Verdict::Fail,
            format!("only {shown}: the till will soon refuse sales (storage_full); free space now"),
        )
    } else if free < DISK_WARN {
        (
            Verdict::Warn,
            format!("only {shown}: free space before the disk fills"),
        )
    } else {
        (Verdict::Ok, shown)
    }
}

fn private_file(path: &Path) -> (Verdict, String) {
    match std::fs::metadata(path) {
        Err(_) => (
            Verdict::Warn,
            format!(
                "{} does not exist yet (laned creates it at start)",
                path.display()
            ),
        ),
        Ok(_m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = _m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return (
                        Verdict::Fail,
                        format!("{} is {mode:o}: make it 600", path.display()),
                    );
                }
            }
            (Verdict::Ok, format!("{} (owner only)", path.display()))
        }
    }
}

/// Whether the lane's daemon runs, and is this lane's and this version.
fn daemon(probe: &Probe, lane_id: Option<&str>) -> (Verdict, String) {
    match probe {
        Probe::NotRunning { last: None } => (
            Verdict::Warn,
            "not running (no daemon has written its address to the lock file)".into(),
        ),
        Probe::NotRunning { last: Some(h) } => (
            Verdict::Warn,
            format!("not running (the last one was: {h})"),
        ),
        Probe::Broken { holder, detail } => (Verdict::Fail, format!("{holder}, but {detail}")),
        Probe::Running {
            holder,
            status: None,
            ..
        } => (
            Verdict::Ok,
            format!("running: {holder} (its API wants a token)"),
        ),
        Probe::Running {
            holder,
            host,
            status: Some(s),
        } => {
            let same = lane_id.is_none_or(|id| s["lane_id"] == id);
            let theirs = format!(
                "{} ({})",
                s["version"].as_str().unwrap_or("?"),
                s["commit"].as_str().unwrap_or("?")
            );
            if !same {
                (
                    Verdict::Fail,
                    format!("another lane ({}) answers at {host}", s["lane_id"]),
                )
            } else if theirs != laned::VERSION {
                (
                    Verdict::Warn,
                    format!(
                        "running laned {theirs}, but this is {}: restart the service to run the installed one",
                        laned::VERSION
                    ),
                )
            } else {
                (
                    Verdict::Ok,
                    format!(
                        "running: {holder}; state {}",
                        s["lane_state"].as_str().unwrap_or("?")
                    ),
                )
            }
        }
    }
}

fn clock(now: jiff::Timestamp, server_time: &str) -> (Verdict, String) {
    let Ok(theirs) = server_time.parse::<jiff::Timestamp>() else {
        return (
            Verdict::Warn,
            format!("the back-end's time {server_time:?} is not readable"),
        );
    };
    let offset = now.duration_since(theirs);
    let secs = offset.as_secs();
    let (v, how) = if offset.unsigned_abs() > CLOCK_WARN {
        (Verdict::Warn, "check the till's time settings")
    } else {
        (Verdict::Ok, "within a minute")
    };
    (v, format!("{secs:+} s against the back-end's clock: {how}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_judged_against_what_a_lane_needs() {
        let (v, d) = disk_verdict(12_300_000_000);
        assert_eq!(v, Verdict::Ok);
        assert_eq!(d, "12.3 GB free for the sales database");
        let (v, d) = disk_verdict(DISK_WARN - 1);
        assert_eq!(v, Verdict::Warn);
        assert!(d.starts_with("only 1.1 GB free"), "{d}");
        let (_, d) = disk_verdict(500_000_000);
        assert!(d.starts_with("only 500.0 MB free"), "{d}");
        assert_eq!(disk_verdict(DISK_WARN).0, Verdict::Ok);
        let (v, d) = disk_verdict(DISK_FAIL - 1);
        assert_eq!(v, Verdict::Fail);
        assert!(d.contains("storage_full"), "{d}");
        assert_eq!(disk_verdict(0).0, Verdict::Fail);
        assert_eq!(disk_verdict(DISK_FAIL).0, Verdict::Warn);
    }

    #[cfg(unix)]
    #[test]
    fn free_space_is_measured_on_the_data_directory() {
        let dir = std::env::temp_dir();
        assert!(free_space(&dir).is_some_and(|b| b > 0));
        assert_eq!(free_space(&dir.join("no-such-directory-here")), None);
    }
}
