//! What the benchmarks share: a lane's configuration and a backlog of
//! sales stored straight into its store.

use std::sync::Arc;

use laned::common::clock::SystemClock;
use laned::common::hash::sha256_hex;
use laned::common::secret::Secret;
use laned::contract::Kind;
use laned::lane::config::Config;
use laned::lane::daemon::Daemon;
use laned::lane::store::NewSale;
use uuid::Uuid;

/// Lane "BENCH" in `dir`, delivering to `backend_url` (if any) in batches
/// of `batch`, with the token "bench".
pub fn config(dir: &std::path::Path, backend_url: Option<String>, batch: usize) -> Config {
    let mut c = Config::defaults("BENCH", dir).expect("default config");
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.log_level = "warn".into();
    c.backend_url = backend_url;
    c.drain.batch_size = batch;
    c.drain.backend_token = Some(Secret::new("bench"));
    c
}

/// Stores `n` sales straight into a lane's store (no back-end yet).
pub async fn backlog(dir: &std::path::Path, n: usize) {
    let d = Daemon::start(&config(dir, None, 100), Arc::new(SystemClock::new()))
        .await
        .expect("start");
    let store = d.store().clone();
    let callers = 32;
    let mut tasks = vec![];
    for c in 0..callers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(callers) {
                let id = Uuid::new_v4();
                let (sale_json, total) = sale(i, id);
                store
                    .insert_sale(NewSale {
                        transaction_id: id,
                        kind: Kind::Sale,
                        references: None,
                        client_key: None,
                        sale_sha256: sha256_hex(sale_json.as_bytes()),
                        sale_json,
                        currency: "KES".into(),
                        total,
                        business_date: "2026-11-22".into(),
                        replay_only: false,
                    })
                    .await
                    .expect("insert");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.run(async {
        let _ = stopped.await;
    }));
    let _ = stop.send(());
    run.await.expect("join").expect("stop");
}

/// The `i`-th sale of a benchmark, with id `id`: its canonical JSON, as
/// the till API would store it (salemap checks it again), and its total.
pub fn sale(i: usize, id: Uuid) -> (String, i64) {
    let price = 100 + (i % 900) as i64;
    let doc = serde_json::json!({"kind": "sale", "references": null,
        "business_date": "2026-11-22", "occurred_at": "2026-11-22T14:03:11+03:00",
        "currency": "KES", "cashier": "E042",
        "lines": [{"sku": format!("SKU{i}"), "name": "Milk 1L", "quantity": "2",
                   "unit_price": price, "discount": 0, "tax_code": "A", "amount": 2 * price}],
        "payments": [{"payment_id": Uuid::new_v4(), "method": "cash", "amount": 2 * price}],
        "total": 2 * price, "change": 0,
        "till": {"invoice_no": format!("{i}"), "register": "R3"}, "extra": {}});
    let json = laned::contract::sale::validate(&doc, Some(id))
        .expect("a valid sale")
        .canonical_json();
    (json, 2 * price)
}

/// Reads a started binary's readiness line (`laned: listening on URL`, or
/// `salemap: …`) from its piped stdout and returns the URL.
#[allow(dead_code)] // export_load.rs includes this file and starts no binary
pub fn listening_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("readiness line");
    line.trim()
        .split_once(": listening on ")
        .map(|(_, u)| u.to_owned())
        .unwrap_or_else(|| panic!("no readiness line, got {line:?}"))
}

/// Resident memory of process `pid`, in KiB (0 where it cannot be read).
#[allow(dead_code)] // export_load.rs includes this file and reads no memory
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
