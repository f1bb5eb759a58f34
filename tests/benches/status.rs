//! What operators read, at any size (issue 18): how long `GET /v1/status`,
//! the status page, `/metrics` and `laned status` take on a lane holding
//! 10,000, 100,000 and 1,000,000 sales, each against its limit (5 ms
//! median for the daemon's answers, 50 ms for the command including the
//! process start). Side by side, on the same database: the full recount
//! of every sale that the figures were once read with, which is what the
//! kept tallies replace.
//!
//! The lane is the real release `laned` started on the database; most of
//! its sales are posted, a hundred pending and five stuck, as on a lane
//! with years of history and a small backlog. `cargo bench -- status` runs
//! it at the three sizes (`LANED_BENCH_SALES` sets the largest; the
//! smaller are a tenth and a hundredth of it); under `cargo test` it runs
//! at 300 sales so that it stays working.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// Requests of each kind per size; the median and the slowest are shown.
const REQUESTS: usize = 50;
/// `laned status` runs per size.
const COMMANDS: usize = 20;
/// The limits the figures are compared with.
const DAEMON_LIMIT: Duration = Duration::from_millis(5);
const COMMAND_LIMIT: Duration = Duration::from_millis(50);

pub fn main(full: bool) {
    let largest = std::env::var("LANED_BENCH_SALES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 300 });
    let sizes: Vec<usize> = if full {
        vec![largest / 100, largest / 10, largest]
    } else {
        vec![largest]
    };
    let base = std::env::var_os("LANED_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "median (slowest) of {REQUESTS} requests each, {COMMANDS} runs of `laned status`; \
         limits: {} ms per answer, {} ms per command",
        DAEMON_LIMIT.as_millis(),
        COMMAND_LIMIT.as_millis()
    );
    println!(
        "| sales | full recount (before) | GET /v1/status | GET / (page) | GET /metrics | laned status |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let mut stored = 0;
    for n in sizes {
        // The lane grows from one size to the next: only the difference is
        // stored each time.
        rt.block_on(support::backlog(dir.path(), n - stored));
        stored = n;
        settle(dir.path());
        let recount = recount(dir.path());
        let mut lane = start(dir.path());
        let url = support::listening_url(&mut lane);
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let mut row = vec![format!("{n}"), shown(&recount)];
        for path in ["/v1/status", "/", "/metrics"] {
            let times = rt.block_on(requests(&http, &format!("{url}{path}")));
            row.push(shown(&times));
        }
        row.push(shown(&commands(dir.path())));
        stop(&mut lane);
        println!("| {} |", row.join(" | "));
    }
}

/// Posts all but the last hundred sales and makes five of those stuck, as
/// the drain would have (the kept tallies follow, by their triggers).
fn settle(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).expect("open");
    conn.execute_batch(
        "BEGIN;
         UPDATE sales SET state = 'posted', posted_at = recorded_at, doc_no = 'D' || seq
         WHERE state = 'pending' AND seq <= (SELECT max(seq) - 100 FROM sales);
         UPDATE sales SET state = 'stuck', last_error_code = 'unknown_sku',
                          last_error = 'The back-end does not know this item.'
         WHERE seq IN (SELECT seq FROM sales WHERE state = 'pending' ORDER BY seq LIMIT 5);
         COMMIT;",
    )
    .expect("settle the backlog");
}

/// The figures read the old way: every sale counted (median of five).
fn recount(dir: &Path) -> Vec<Duration> {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join(laned::lane::store::DB_FILE),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open");
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let mut st = conn
                .prepare_cached("SELECT state, count(*) FROM sales GROUP BY state")
                .expect("prepare");
            let n: i64 = st
                .query_map([], |r| r.get::<_, i64>(1))
                .expect("query")
                .map(|r| r.expect("row"))
                .sum();
            let amount: i64 = conn
                .query_row(
                    "SELECT coalesce(sum(CASE kind WHEN 'sale' THEN total
                                                    WHEN 'return' THEN -total ELSE 0 END), 0)
                     FROM sales WHERE state = 'pending'",
                    [],
                    |r| r.get(0),
                )
                .expect("sum");
            assert!(n > 0 && amount > 0);
            t.elapsed()
        })
        .collect()
}

fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_laned"))
        .args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "BENCH"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LANED_CONFIG")
        .env("LANED_LOG_LEVEL", "error")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn laned")
}

fn stop(child: &mut Child) {
    #[cfg(unix)]
    crate::signal::sigterm(child);
    #[cfg(not(unix))]
    let _ = child.kill();
    let status = child.wait().expect("wait");
    assert!(
        status.success() || cfg!(not(unix)),
        "laned exited with {status}"
    );
}

/// `REQUESTS` GETs of `url` one after another, after three to warm up.
async fn requests(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut times = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS + 3 {
        let t = Instant::now();
        let r = http.get(url).send().await.expect("request");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        let body = r.bytes().await.expect("body");
        assert!(!body.is_empty());
        if i >= 3 {
            times.push(t.elapsed());
        }
    }
    times
}

/// `laned status --json` on the lane's database, start to exit.
fn commands(dir: &Path) -> Vec<Duration> {
    (0..COMMANDS)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_laned"))
                .args(["status", "--json", "--lane-id", "BENCH"])
                .arg("--data-dir")
                .arg(dir)
                .env_remove("LANED_CONFIG")
                .output()
                .expect("laned status");
            let took = t.elapsed();
            // Exit codes other than 0 report the lane's trouble (here: its
            // stuck sales); the figures are what is measured.
            assert!(
                out.stdout.starts_with(b"{"),
                "laned status printed {}",
                String::from_utf8_lossy(&out.stderr)
            );
            took
        })
        .collect()
}

fn shown(times: &[Duration]) -> String {
    let mut t = times.to_vec();
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!("{:.2} ms ({:.2})", ms(t[t.len() / 2]), ms(t[t.len() - 1]))
}
