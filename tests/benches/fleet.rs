//! The fleet benchmark (issue 21): a thousand lanes reconnecting at once
//! after an outage, each with a backlog, against the real `salemap` binary
//! on SQLite and on PostgreSQL. `cargo bench -- fleet`; under `cargo test`
//! it runs 20 lanes of 10 sales.
//!
//! Each simulated lane sends its backlog in batches of 100, in order, the
//! way laned's drain does: a `429` or `503` is retried after the answer's
//! `Retry-After` (a second without one), and every tenth lane first loses
//! the answer to its first batch and sends it again. It reports the rate of
//! new postings, batch latency, how many answers were `429` and `503`, and
//! salemap's resident memory before, at the peak and after the storm; then
//! it checks that every series is numbered 1..n and that no sale was posted
//! twice.
//!
//! `LANED_BENCH_LANES` (1000), `LANED_BENCH_BACKLOG` (100) and
//! `LANED_BENCH_STORES` (`sqlite` or `postgres`) change the run.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use laned::contract::journal::{GENESIS, hash};
use serde_json::Value;
use uuid::Uuid;

use crate::pg;
use crate::support::{listening_url, rss_kib};

const BATCH: usize = 100;

/// One lane's backlog: its batches' bodies, and each sale's id.
struct Backlog {
    lane: String,
    batches: Vec<(String, Vec<String>)>,
}

/// A lane's journal of `n` sales, linked and with running grand totals, in
/// batch bodies of at most [`BATCH`].
fn backlog(lane: &str, n: usize) -> Backlog {
    let mut last = GENESIS.to_owned();
    let mut grand = 0i64;
    let mut envs = Vec::with_capacity(n);
    for i in 0..n {
        let id = Uuid::new_v4();
        let (sale, total) = crate::support::sale(i, id);
        grand += total;
        let env = format!(
            "{{\"transaction_id\":\"{id}\",\"lane_id\":\"{lane}\",\"series\":\"{lane}\",\
             \"receipt_no\":{no},\"lane_seq\":{no},\"recorded_at\":\"2026-11-22T11:03:11.482Z\",\
             \"prev_hash\":\"{last}\",\"grand_total\":{{\"KES\":{grand}}},\"sale\":{sale}}}",
            no = i + 1,
        );
        last = hash(env.as_bytes());
        envs.push((id.to_string(), env));
    }
    let batches = envs
        .chunks(BATCH)
        .map(|chunk| {
            let body = format!(
                "{{\"lane_id\":\"{lane}\",\"sales\":[{}]}}",
                chunk
                    .iter()
                    .map(|(_, e)| e.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            (body, chunk.iter().map(|(id, _)| id.clone()).collect())
        })
        .collect();
    Backlog {
        lane: lane.to_owned(),
        batches,
    }
}

/// What the storm's answers came to.
#[derive(Default)]
struct Tally {
    /// Latency of every answered batch (`200`).
    latencies: Vec<Duration>,
    /// Sale id → the document number its `201` gave it.
    posted: HashMap<String, String>,
    /// Sales answered `201` a second time (posted twice: must stay 0).
    twice: u64,
    /// Replays (`200` per sale) whose number differs from the first.
    replay_differs: u64,
    replays: u64,
    /// Per-sale answers other than 201/200, by status.
    refused: HashMap<u16, u64>,
    /// Whole-batch answers by status, other than 200.
    batch_status: HashMap<u16, u64>,
}

/// One lane delivering its backlog, as laned's drain does.
async fn lane(
    http: reqwest::Client,
    url: String,
    b: Backlog,
    lose_first: bool,
    tally: Arc<Mutex<Tally>>,
) {
    for (k, (body, ids)) in b.batches.iter().enumerate() {
        let mut lose = lose_first && k == 0;
        loop {
            let started = Instant::now();
            let answer = http
                .post(format!("{url}/v1/sales:batch"))
                .bearer_auth("bench")
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let resp = match answer {
                Ok(r) => r,
                Err(_) => {
                    // A lane retries a broken exchange after its backoff;
                    // counted apart (status 0), as none should happen.
                    *tally
                        .lock()
                        .expect("tally")
                        .batch_status
                        .entry(0)
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let text = resp.text().await.unwrap_or_default();
            let took = started.elapsed();
            if status != 200 {
                *tally
                    .lock()
                    .expect("tally")
                    .batch_status
                    .entry(status)
                    .or_default() += 1;
                assert!(
                    matches!(status, 429 | 503 | 409),
                    "lane {}: batch answered {status}: {text}",
                    b.lane
                );
                // The client's side of back-pressure: wait as told.
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1))).await;
                continue;
            }
            let v: Value = serde_json::from_str(&text).expect("batch answer is JSON");
            let results = v["results"].as_array().expect("results");
            assert_eq!(results.len(), ids.len(), "one result per sale");
            let mut t = tally.lock().expect("tally");
            t.latencies.push(took);
            for r in results {
                let id = r["transaction_id"].as_str().unwrap_or_default().to_owned();
                let doc_no = r["doc_no"].as_str().unwrap_or_default().to_owned();
                match r["status"].as_u64() {
                    Some(201) => {
                        if t.posted.insert(id, doc_no).is_some() {
                            t.twice += 1;
                        }
                    }
                    Some(200) => {
                        t.replays += 1;
                        if t.posted.get(&id) != Some(&doc_no) {
                            t.replay_differs += 1;
                        }
                    }
                    Some(s) => {
                        *t.refused.entry(s as u16).or_default() += 1;
                    }
                    None => panic!("a result without a status: {r}"),
                }
            }
            drop(t);
            if lose {
                // The answer was lost on the way: send the batch again.
                lose = false;
                continue;
            }
            break;
        }
    }
}

/// salemap's resident memory, sampled until told to stop: the peak.
fn watch_memory(
    pid: u32,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
            // A sampling period, not a synchronisation.
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// salemap's largest mappings by resident size (`/proc/PID/smaps`), to
/// see what holds its memory: the heap, thread stacks and arenas, files.
fn print_mappings(pid: u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, String)> = vec![];
    let mut name = String::new();
    for line in text.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            let kib = rss
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            maps.push((kib, name.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-'))
        {
            name = line.to_owned();
        }
    }
    maps.sort_unstable_by_key(|m| std::cmp::Reverse(m.0));
    let anon: u64 = maps
        .iter()
        .filter(|(_, n)| n.split_whitespace().count() < 6)
        .map(|(k, _)| k)
        .sum();
    println!(
        "salemap mappings: {} in all, anonymous {:.1} MiB; largest:",
        maps.len(),
        mib(anon)
    );
    for (kib, n) in maps.iter().take(12) {
        println!("  {:>8.1} MiB  {n}", mib(*kib));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// The salemap process, killed when dropped (a failed check included).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        // Stopped as systemd stops it (so a profiler around it can write
        // its report); killed where there is no SIGTERM.
        #[cfg(unix)]
        crate::signal::sigterm(&self.0);
        #[cfg(not(unix))]
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_salemap(dir: &std::path::Path, database: Option<&str>) -> (Process, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_salemap"));
    c.args(["serve", "--allow-any-lane", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("salemap"))
        .env("SALEMAP_LOG_LEVEL", "error")
        .stdout(Stdio::piped());
    if let Some(url) = database {
        c.env("SALEMAP_DATABASE", url);
    }
    let mut child = c.spawn().expect("spawn salemap");
    let url = listening_url(&mut child);
    (Process(child), url)
}

async fn storm(store: &str, database: Option<&str>, lanes: usize, per_lane: usize, full: bool) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let (salemap, url) = start_salemap(dir.path(), database);
    let pid = salemap.0.id();
    let backlogs: Vec<Backlog> = (0..lanes)
        .map(|i| backlog(&format!("F{i:04}"), per_lane))
        .collect();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(lanes)
        .build()
        .expect("client");
    // One heartbeat, so that the figure before is of a salemap that has
    // served a request (its pools and threads up).
    let hb = http
        .get(format!("{url}/v1/heartbeat?lane_id=F0000"))
        .bearer_auth("bench")
        .send()
        .await
        .expect("heartbeat");
    assert!(hb.status().is_success(), "heartbeat: {}", hb.status());
    let before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let watcher = watch_memory(pid, stop.clone(), peak.clone());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let tasks: Vec<_> = backlogs
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            tokio::spawn(lane(
                http.clone(),
                url.clone(),
                b,
                i % 10 == 0,
                tally.clone(),
            ))
        })
        .collect();
    for t in tasks {
        t.await.expect("lane task");
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    let after = rss_kib(pid);
    drop(http);
    // Memory once the storm's connections are closed and salemap's idle
    // threads have gone (tokio keeps an idle blocking thread 10 s).
    // (The short run under `cargo test` does not wait for them.)
    let pause = |s| Duration::from_secs(if full { s } else { 0 });
    tokio::time::sleep(pause(12)).await;
    let settled = rss_kib(pid);
    // And once the allocator has given back what it keeps for reuse.
    tokio::time::sleep(pause(18)).await;
    let later = rss_kib(pid);
    if std::env::var_os("LANED_BENCH_MEMORY_DETAIL").is_some() {
        print_mappings(pid);
    }

    let mut t = std::mem::take(&mut *tally.lock().expect("tally"));
    t.latencies.sort();
    let new = t.posted.len();
    // Every series numbered 1..n: each lane's document numbers are its
    // series followed by 1..n, each once.
    let mut numbers: HashMap<String, Vec<i64>> = HashMap::new();
    for doc_no in t.posted.values() {
        let (series, no) = doc_no.split_once('/').expect("doc_no is SERIES/NUMBER");
        numbers
            .entry(series.to_owned())
            .or_default()
            .push(no.parse().expect("a number"));
    }
    let gapless = numbers.len() == lanes
        && numbers.values_mut().all(|v| {
            v.sort_unstable();
            v.iter().copied().eq(1..=per_lane as i64)
        });
    let status = |s: u16| t.batch_status.get(&s).copied().unwrap_or(0);
    println!(
        "fleet, {store}: {lanes} lanes x {per_lane} sales: {new} new postings in {:.1} s = {:.0} \
         postings/s; {} batches answered (p50 {:.0} ms, p99 {:.0} ms), {} replays; \
         429: {}, 503: {}, 409: {}, broken exchanges: {}; salemap RSS {:.1} MiB before, {:.1} MiB peak, {:.1} MiB \
         after, {:.1} MiB 12 s later, {:.1} MiB 30 s later",
        took.as_secs_f64(),
        new as f64 / took.as_secs_f64(),
        t.latencies.len(),
        percentile(&t.latencies, 0.5),
        percentile(&t.latencies, 0.99),
        t.replays,
        status(429),
        status(503),
        status(409),
        status(0),
        mib(before),
        mib(peak.load(Ordering::Relaxed)),
        mib(after),
        mib(settled),
        mib(later),
    );
    assert!(t.refused.is_empty(), "sales refused: {:?}", t.refused);
    assert_eq!(new, lanes * per_lane, "every sale posted");
    assert_eq!(t.twice, 0, "no sale posted twice");
    assert_eq!(t.replay_differs, 0, "a replay answers the first number");
    assert!(gapless, "every series numbered 1..n");
    drop(salemap);
}

pub fn main(full: bool) {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (lanes, per_lane) = if full {
        (
            env("LANED_BENCH_LANES", 1000),
            env("LANED_BENCH_BACKLOG", 100),
        )
    } else {
        (20, 10)
    };
    let only = std::env::var("LANED_BENCH_STORES").unwrap_or_default();
    // Durable like production, as in the salemap benchmark.
    if std::env::var_os("LANED_BENCH_PG_NO_FSYNC").is_none() {
        pg::durable();
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        if only.is_empty() || only == "sqlite" {
            storm("SQLite", None, lanes, per_lane, full).await;
        }
        if only.is_empty() || only == "postgres" {
            match pg::database().await {
                Some(db) => storm("PostgreSQL", Some(&db.url), lanes, per_lane, full).await,
                None => println!("fleet, PostgreSQL: skipped (no PostgreSQL server binaries)"),
            }
        }
    });
}
