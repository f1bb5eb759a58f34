//! Durable ingest benchmark (issue 2): sales/s and latency over HTTP with 1
//! and 32 concurrent clients, next to the rate of naive one-transaction-per-
//! sale SQLite inserts with `synchronous=FULL`, measured in the same run on
//! the same disk.
//!
//! `cargo bench --bench ingest` runs it in full and prints a Markdown table
//! for BENCHMARKS.md. Under `cargo test` (no `--bench` argument) it runs a
//! few sales only, so the benchmark itself stays working.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use laned::clock::SystemClock;
use laned::config::{Config, LogFormat};
use laned::daemon::Daemon;
use serde_json::{Value, json};
use uuid::Uuid;

struct Sizes {
    naive: usize,
    one_client: usize,
    many_clients: usize,
    concurrency: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            naive: 2_000,
            one_client: 3_000,
            many_clients: 40_000,
            concurrency: 32,
        }
    } else {
        Sizes {
            naive: 20,
            one_client: 20,
            many_clients: 64,
            concurrency: 32,
        }
    };
    let base = std::env::var_os("LANED_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");

    let naive = naive_inserts(&dir.path().join("naive.db"), sizes.naive);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (one, many) = rt.block_on(async {
        let cfg = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("lane"),
            lane_id: "BENCH".into(),
            series: "BENCH".into(),
            backend_url: None,
            log_format: LogFormat::Text,
            log_level: "warn".into(),
            api_token: None,
            allowed_hosts: vec![],
        };
        let daemon = Daemon::start(&cfg, Arc::new(SystemClock::new()))
            .await
            .expect("start");
        let base = format!("http://{}", daemon.addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(daemon.run(async {
            let _ = stopped.await;
        }));
        let one = drive(&base, 1, sizes.one_client).await;
        let many = drive(&base, sizes.concurrency, sizes.many_clients).await;
        let _ = stop.send(());
        server.await.expect("join").expect("clean stop");
        (one, many)
    });

    println!("| measurement | sales | sales/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    row(
        "naive SQLite, 1 transaction per sale, synchronous=FULL",
        &naive,
    );
    row("laned over HTTP, 1 client", &one);
    row(
        &format!("laned over HTTP, {} clients", sizes.concurrency),
        &many,
    );
    println!();
    println!(
        "{} clients vs naive: {:.1}x",
        sizes.concurrency,
        many.rate() / naive.rate()
    );
}

fn row(label: &str, r: &Run) {
    println!(
        "| {label} | {} | {:.0} | {} | {} |",
        r.count,
        r.rate(),
        fmt_d(r.p(50)),
        fmt_d(r.p(99))
    );
}

struct Run {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
    fn new(count: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> Run {
        latencies.sort_unstable();
        Run {
            count,
            elapsed,
            latencies,
        }
    }
    /// The `pct`th percentile latency.
    fn p(&self, pct: usize) -> Duration {
        let i = (self.latencies.len() * pct / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

fn fmt_d(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn body(i: usize) -> Value {
    let price = 100 + (i % 900) as i64;
    json!({"kind": "sale", "references": null, "business_date": "2026-11-22",
           "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "E042",
           "lines": [{"sku": format!("SKU{i}"), "name": "Milk 1L", "quantity": "2", "unit_price": price,
                      "discount": 0, "tax_code": "A", "amount": 2 * price}],
           "payments": [{"method": "cash", "amount": 2 * price}],
           "total": 2 * price, "change": 0, "till": {"register": "R3"}, "extra": {}})
}

/// One `BEGIN; INSERT; COMMIT` per sale on a WAL database with
/// `synchronous=FULL`: what a daemon without group commit would do.
fn naive_inserts(path: &Path, n: usize) -> Run {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE sales (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, body BLOB);",
    )
    .expect("setup");
    let mut latencies = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let b = body(i).to_string();
        c.execute(
            "INSERT INTO sales (id, body) VALUES (?1, ?2)",
            (Uuid::new_v4().to_string(), b),
        )
        .expect("insert");
        latencies.push(t.elapsed());
    }
    Run::new(n, start.elapsed(), latencies)
}

/// `total` PUTs over `clients` concurrent HTTP clients.
async fn drive(base: &str, clients: usize, total: usize) -> Run {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let per = total / clients;
    let start = Instant::now();
    let mut tasks = vec![];
    for c in 0..clients {
        let (http, base) = (http.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                let r = http
                    .put(format!("{base}/v1/sales/{}", Uuid::new_v4()))
                    .json(&body(c * per + i))
                    .send()
                    .await
                    .expect("PUT");
                assert_eq!(r.status(), 201);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    Run::new(per * clients, start.elapsed(), latencies)
}
