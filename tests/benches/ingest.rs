//! Durable ingest benchmark (issue 2): sales/s and latency over HTTP with 1
//! and 32 concurrent clients, next to the rate of naive one-transaction-per-
//! sale SQLite inserts with `synchronous=FULL`, measured in the same run on
//! the same disk.
//!
//! `cargo bench -- ingest` runs it in full and prints a Markdown table
//! for BENCHMARKS.md. Under `cargo test` (no `--bench` argument) it runs a
//! few sales only, so the benchmark itself stays working.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use laned::common::clock::SystemClock;
use laned::contract::Kind;
use laned::lane::config::Config;
use laned::lane::daemon::Daemon;
use laned::lane::store::{InsertOutcome, NewSale, Store};
use serde_json::{Value, json};
use uuid::Uuid;

struct Sizes {
    naive: usize,
    one_client: usize,
    many_clients: usize,
    concurrency: usize,
}

pub fn main(full: bool) {
    let (sizes, rounds) = if full {
        let s = Sizes {
            naive: 4_000,
            one_client: 3_000,
            many_clients: 32_000,
            concurrency: 32,
        };
        (s, 3)
    } else {
        let s = Sizes {
            naive: 20,
            one_client: 20,
            many_clients: 64,
            concurrency: 32,
        };
        (s, 1)
    };
    let base = std::env::var_os("LANED_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    println!("data directory: {}", dir.path().display());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut naive = vec![];
    let mut store_only = vec![];
    let mut one = vec![];
    let mut many = vec![];
    // Rounds interleave the measurements so that a slow spell of the disk
    // or the host does not land on one of them only; the median is shown.
    for round in 0..rounds {
        naive.push(naive_inserts(
            &dir.path().join(format!("naive-{round}.db")),
            sizes.naive,
        ));
        rt.block_on(async {
            let cfg = bench_config(&dir.path().join(format!("lane-{round}")));
            let daemon = Daemon::start(&cfg, Arc::new(SystemClock::new()))
                .await
                .expect("start");
            store_only
                .push(store_direct(daemon.store(), sizes.concurrency, sizes.many_clients).await);
            let base = format!("http://{}", daemon.addr());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(daemon.run(async {
                let _ = stopped.await;
            }));
            one.push(drive(&base, 1, sizes.one_client).await);
            many.push(drive(&base, sizes.concurrency, sizes.many_clients).await);
            let _ = stop.send(());
            server.await.expect("join").expect("clean stop");
        });
    }
    let (naive, store_only, one, many) =
        (median(naive), median(store_only), median(one), median(many));

    println!("| measurement (median of {rounds} rounds) | sales | sales/s | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    row(
        "naive SQLite, 1 transaction per sale, synchronous=FULL",
        &naive,
    );
    row(
        &format!(
            "laned store only, {} concurrent callers (no HTTP)",
            sizes.concurrency
        ),
        &store_only,
    );
    row("laned over HTTP, 1 client", &one);
    row(
        &format!("laned over HTTP, {} clients", sizes.concurrency),
        &many,
    );
    println!();
    println!(
        "{} HTTP clients vs naive: {:.1}x; store only vs naive: {:.1}x",
        sizes.concurrency,
        many.rate() / naive.rate(),
        store_only.rate() / naive.rate()
    );
}

fn bench_config(dir: &Path) -> Config {
    let mut c = Config::defaults("BENCH", dir).expect("default config");
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.log_level = "warn".into();
    c
}

/// The run with the median rate.
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

/// `total` sales straight into the store from `callers` concurrent tasks:
/// what group commit alone achieves, without HTTP and JSON.
async fn store_direct(store: &Store, callers: usize, total: usize) -> Run {
    let per = total / callers;
    let start = Instant::now();
    let mut tasks = vec![];
    for c in 0..callers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let sale_json = body(c * per + i).to_string();
                let new = NewSale {
                    transaction_id: Uuid::new_v4(),
                    kind: Kind::Sale,
                    references: None,
                    client_key: None,
                    sale_sha256: laned::common::hash::sha256_hex(sale_json.as_bytes()),
                    sale_json,
                    currency: "KES".into(),
                    total: 0,
                    business_date: "2026-11-22".into(),
                    replay_only: false,
                };
                let t = Instant::now();
                let r = store.insert_sale(new).await.expect("insert");
                assert!(matches!(r, InsertOutcome::Created(_)));
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.expect("caller task"));
    }
    Run::new(per * callers, start.elapsed(), latencies)
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

/// `total` PUTs over `clients` concurrent HTTP clients. Bodies and ids are
/// made before the clock starts: a till sends bytes it already holds, and
/// the client shares this machine's two cores with the daemon.
async fn drive(base: &str, clients: usize, total: usize) -> Run {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let per = total / clients;
    let work: Vec<Vec<(String, Vec<u8>)>> = (0..clients)
        .map(|c| {
            (0..per)
                .map(|i| {
                    let url = format!("{base}/v1/sales/{}", Uuid::new_v4());
                    (url, body(c * per + i).to_string().into_bytes())
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let mut tasks = vec![];
    for requests in work {
        let http = http.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(requests.len());
            for (url, body) in requests {
                let t = Instant::now();
                let r = http
                    .put(url)
                    .header("content-type", "application/json")
                    .body(body)
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
