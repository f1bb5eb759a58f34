//! The reliability suite: attacks on the real `laned` and `salemap`
//! binaries, from a printed seed, checked by a checker that trusts neither.
//! RELIABILITY.md says what is attacked, how, and what a full-size run
//! found.
//!
//! Sizes: `LANED_ATTACK_SCALE` multiplies kills, tills and time (1, the
//! default, is CI's bounded size); `LANED_SEED` replays a run.
//! `LANED_ATTACK_LANED` and `LANED_ATTACK_SALEMAP` attack other builds of
//! the binaries (an older release, to see what the suite finds there).

#[path = "../common/mod.rs"]
mod common;

mod ceiling;
mod checker;
mod cluster;
#[cfg(target_os = "linux")]
mod disk;
mod fuzz;
mod proxy;
mod restore;
mod slow;
mod tills;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use laned::salemap::Database;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use cluster::{Proc, binary, free_port};

const TOKEN: &str = "attack-lane-token";

/// The size of a run: 1 in CI, more by `LANED_ATTACK_SCALE`.
fn scale() -> u32 {
    std::env::var("LANED_ATTACK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or(1)
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// The back-end: `salemap serve` on a fixed port, with a tokens file for
/// lane L03.
fn salemap(dir: &std::path::Path, db: &Database, port: u16) -> Proc {
    let tokens = dir.join("lanes.toml");
    std::fs::write(
        &tokens,
        format!(
            "[lanes]\nL03 = \"{}\"\n",
            laned::salemap::tokens::hash(TOKEN)
        ),
    )
    .expect("tokens file");
    let mut args = os(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
    args.push("--lane-tokens".into());
    args.push(tokens.into());
    match db {
        Database::Sqlite(path) => {
            args.push("--database".into());
            args.push(format!("sqlite:{}", path.display()).into());
        }
        Database::Postgres { url, .. } => {
            args.push("--database".into());
            args.push(url.into());
        }
    }
    Proc::new(
        "salemap",
        binary("LANED_ATTACK_SALEMAP", common::salemap_bin()),
        args,
    )
}

/// The lane: `laned serve` on a fixed port, delivering through `backend`
/// with short timeouts and retries, so faults cost little time.
fn laned(dir: &std::path::Path, port: u16, backend: &str, batch: usize) -> Proc {
    let mut args = os(&[
        "serve",
        "--lane-id",
        "L03",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--backend-url",
        backend,
        "--request-timeout",
        "2s",
        "--backoff-base",
        "100ms",
        "--backoff-cap",
        "2s",
        "--retry-after-cap",
        "2s",
        "--heartbeat-interval",
        "1s",
        "--batch-size",
        &batch.to_string(),
    ]);
    args.push("--data-dir".into());
    args.push(dir.into());
    Proc::new(
        "laned",
        binary("LANED_ATTACK_LANED", common::laned_bin()),
        args,
    )
    .env("LANED_BACKEND_TOKEN", TOKEN)
}

/// What a scenario adds to the common set-up.
#[derive(Default)]
struct Setup<'a> {
    /// Extra environment of salemap and of laned.
    salemap_env: &'a [(&'a str, String)],
    laned_env: &'a [(&'a str, String)],
    /// The proxy refuses the batch route from the start (the lane sends
    /// single `PUT`s).
    singles: bool,
}

/// Both binaries running: salemap on `db`, the fault proxy in front of it
/// (no faults yet), and a lane in `lane_dir` delivering through the proxy
/// in batches of up to `batch`.
struct Rig {
    backend: Proc,
    proxy: proxy::Proxy,
    lane: Proc,
    lane_port: u16,
    backend_port: u16,
    /// The lane's base URL.
    base: String,
}

impl Rig {
    async fn start(
        dir: &std::path::Path,
        db: &Database,
        lane_dir: &std::path::Path,
        seed: u64,
        batch: usize,
        setup: Setup<'_>,
    ) -> Rig {
        let (lane_port, backend_port) = (free_port(), free_port());
        let mut backend = setup
            .salemap_env
            .iter()
            .fold(salemap(dir, db, backend_port), |p, (k, v)| p.env(k, v));
        backend.start(None);
        let proxy = proxy::Proxy::start(([127, 0, 0, 1], backend_port).into(), seed).await;
        if setup.singles {
            proxy.refuse_batches();
        }
        let lane = laned(
            lane_dir,
            lane_port,
            &format!("http://{}", proxy.addr),
            batch,
        );
        let mut lane = setup.laned_env.iter().fold(lane, |p, (k, v)| p.env(k, v));
        lane.start(None);
        Rig {
            backend,
            proxy,
            lane,
            lane_port,
            backend_port,
            base: format!("http://127.0.0.1:{lane_port}"),
        }
    }
}

/// Batches of up to 1, 10 or 100 sales, at random.
fn any_batch(rng: &mut impl rand::Rng) -> usize {
    [1, 10, 100][rng.random_range(0..3)]
}

/// Reads the lane's status until its backlog is empty (every sale posted
/// or stuck); the time it took. The checker then says whether anything
/// is stuck. A backlog that stops shrinking for `within` fails the run
/// (a big backlog may take longer, as long as it keeps moving).
async fn drained(base: &str, within: Duration, procs: &[&Proc]) -> Duration {
    let http = common::client();
    let began = Instant::now();
    let mut last = Value::Null;
    let (mut fewest, mut progress) = (u64::MAX, Instant::now());
    loop {
        if let Ok(r) = http.get(format!("{base}/v1/status")).send().await
            && let Ok(s) = r.json::<Value>().await
        {
            let pending = s["counts"]["pending"].as_u64().unwrap_or(u64::MAX);
            if pending == 0 {
                return began.elapsed();
            }
            if pending < fewest {
                (fewest, progress) = (pending, Instant::now());
            }
            last = s;
        }
        assert!(
            progress.elapsed() < within,
            "the lane's backlog stopped draining for {within:?}; its status:\n{last:#}\n{}",
            procs
                .iter()
                .map(|p| {
                    let logs = p.logs();
                    let lines: Vec<&str> = logs.lines().collect();
                    format!(
                        "the end of {}'s log:\n{}",
                        p.name,
                        lines[lines.len().saturating_sub(40)..].join("\n")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Measuring, not synchronising: the status is read every 50 ms.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Tills ringing at a lane until [`Tills::finish`].
struct Tills {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Tills {
    /// Tills numbered `numbers` (a till's number is in its invoice
    /// numbers, so no two tills of a run share one), each with its own
    /// seed from `seed`, refusing nothing but the codes in `tolerate`.
    fn start(
        numbers: std::ops::Range<u32>,
        base: &str,
        seed: u64,
        ledger: &tills::Shared,
        tolerate: &'static [&'static str],
    ) -> Tills {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let handles = numbers
            .map(|n| {
                tokio::spawn(
                    tills::Till {
                        number: n,
                        base: base.to_owned(),
                        seed: seed ^ u64::from(n + 1),
                        ledger: ledger.clone(),
                        stop: stop_rx.clone(),
                        tolerate,
                    }
                    .run(),
                )
            })
            .collect();
        Tills { stop, handles }
    }

    /// Stops them; each finishes the sale under way first.
    async fn finish(self) {
        let _ = self.stop.send(true);
        for t in self.handles {
            t.await.expect("till");
        }
    }
}

/// Runs the checker over a finished run (both binaries stopped), prints
/// the report headed by `title`, and fails on any violation.
async fn judge(
    title: &str,
    ledger: tills::Ledger,
    lane_dir: &std::path::Path,
    db: &Database,
    logs: &[(&str, String)],
    restore: Option<&checker::Restore>,
) {
    let (sales, lane_integrity) = checker::lane(lane_dir);
    let (docs, backend_integrity) = checker::backend(db).await;
    let mut integrity = vec![("lane", lane_integrity.as_str())];
    if let Some(i) = &backend_integrity {
        integrity.push(("salemap", i.as_str()));
    }
    let verdict = checker::check(&ledger.acked, &sales, &docs, &integrity, logs, restore);
    let report = format!(
        "{title}\n  till answers: {:?}\n  refused as expected: {:?}\n{}",
        ledger.answers,
        ledger.refused,
        verdict.table()
    );
    println!("{report}");
    assert!(
        verdict.violations.is_empty() && ledger.unexpected.is_empty(),
        "{report}\nviolations:\n{}\nanswers a till does not expect:\n{}",
        verdict.violations.join("\n"),
        ledger.unexpected.join("\n")
    );
}

/// Tills, a lossy link, and `kill -9` of laned, salemap or both at random
/// moments (laned's wall clock moved back or forward before some
/// restarts); then the faults stop, the backlog drains, and the checker
/// compares what the tills were told with both databases.
async fn crash_and_fault_loop(store: &str, db: Database, dir: &std::path::Path) {
    let seed = common::seed(&format!("crash_and_fault_loop on {store}"));
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = scale();
    let faketime = common::faketime::preload("the clock moves of the crash loop");
    let batch = any_batch(&mut rng);
    // A back-end without the batch route, one run in three: the lane then
    // sends single PUTs.
    let singles = rng.random_range(0..3) == 0;
    let lane_dir = dir.join("lane");
    let Rig {
        mut backend,
        proxy,
        mut lane,
        base,
        ..
    } = Rig::start(
        dir,
        &db,
        &lane_dir,
        seed,
        batch,
        Setup {
            singles,
            ..Setup::default()
        },
    )
    .await;

    let ledger = tills::Shared::default();
    let tills = Tills::start(0..2 + 2 * scale, &base, seed, &ledger, &[]);

    proxy.set_rate(0.1);
    let began = Instant::now();
    let (mut clock_moves, mut offset) = (0u32, 0i64);
    for _ in 0..6 * scale {
        // The chaos schedule: the tills sell through the lossy link for a
        // while between kills.
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2500))).await;
        // laned, salemap, or both.
        let victim = rng.random_range(0..5);
        if victim != 2 && victim != 3 {
            lane.kill9();
        }
        if victim >= 2 {
            backend.kill9();
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        if !backend.is_running() {
            backend.start(None);
        }
        if !lane.is_running() {
            let moved = faketime.as_deref().filter(|_| rng.random_bool(0.5));
            if moved.is_some() {
                // Back up to three days, or forward up to an hour.
                offset += if rng.random_bool(0.7) {
                    -rng.random_range(60..3 * 86_400)
                } else {
                    rng.random_range(1..3600)
                };
                clock_moves += 1;
            }
            lane.start(moved.map(|lib| (lib, offset)));
        }
    }
    let attacked = began.elapsed();
    proxy.set_rate(0.0);
    tills.finish().await;
    let drain = drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();

    let title = format!(
        "crash_and_fault_loop on {store}, seed {seed}, scale {scale}, {}\n  \
         attacked for {attacked:.1?}; kill -9: laned {}, salemap {}; laned's clock moved {clock_moves} \
         times; backlog drained {drain:.1?} after the faults stopped\n  \
         faults by kind: {:?}",
        if singles {
            "single PUTs (no batch route)".to_owned()
        } else {
            format!("batches of up to {batch}")
        },
        lane.kills,
        backend.kills,
        proxy.counts(),
    );
    let logs = [("laned", lane.logs()), ("salemap", backend.logs())];
    judge(&title, ledger.take(), &lane_dir, &db, &logs, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_fault_loop_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    crash_and_fault_loop("SQLite", db, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_fault_loop_on_postgres() {
    let Some(pg) = common::pg::database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Postgres {
        url: pg.url.clone(),
        lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
    };
    crash_and_fault_loop("PostgreSQL", db, dir.path()).await;
}
