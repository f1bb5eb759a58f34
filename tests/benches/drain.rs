//! Drain benchmark (issue 3): how fast a lane empties a backlog into the
//! scripted back-end over loopback, with batches of 100 and with single
//! PUTs. `cargo bench --bench drain`; under `cargo test` it runs a few
//! hundred sales only, so the benchmark itself stays working.

#[path = "../common/backend.rs"]
#[allow(dead_code)]
mod backend;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::Backend;
use laned::clock::SystemClock;
use laned::config::{Config, Secret};
use laned::contract::Kind;
use laned::daemon::Daemon;
use laned::store::{NewSale, sha256_hex};
use uuid::Uuid;

fn config(dir: &std::path::Path, backend_url: Option<String>, batch: usize) -> Config {
    let mut c = Config::defaults("BENCH", dir).expect("default config");
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.log_level = "warn".into();
    c.backend_url = backend_url;
    c.drain.batch_size = batch;
    c.drain.backend_token = Some(Secret::new("bench"));
    c
}

/// Stores `n` sales straight into a lane's store (no back-end yet).
async fn backlog(dir: &std::path::Path, n: usize) {
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
                let price = 100 + (i % 900) as i64;
                let sale_json = serde_json::json!({"kind": "sale", "references": null,
                    "business_date": "2026-11-22", "occurred_at": "2026-11-22T14:03:11+03:00",
                    "currency": "KES", "cashier": "E042",
                    "lines": [{"sku": format!("SKU{i}"), "name": "Milk 1L", "quantity": "2",
                               "unit_price": price, "discount": 0, "tax_code": "A", "amount": 2 * price}],
                    "payments": [{"method": "cash", "amount": 2 * price}],
                    "total": 2 * price, "change": 0, "till": {"register": "R3"}, "extra": {}})
                .to_string();
                store
                    .insert_sale(NewSale {
                        transaction_id: Uuid::new_v4(),
                        kind: Kind::Sale,
                        references: None,
                        client_key: None,
                        sale_sha256: sha256_hex(sale_json.as_bytes()),
                        sale_json,
                        currency: "KES".into(),
                        total: 2 * price,
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

/// Starts the lane on its backlog and times the drain until the back-end
/// holds every sale.
async fn drain(dir: &std::path::Path, n: usize, batch: bool) -> Duration {
    let backend = Backend::start(Some("bench")).await;
    if !batch {
        backend.without_batch();
    }
    let start = Instant::now();
    let d = Daemon::start(
        &config(dir, Some(backend.url.clone()), 100),
        Arc::new(SystemClock::new()),
    )
    .await
    .expect("start");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(d.run(async {
        let _ = stopped.await;
    }));
    backend.wait_for_posted(n).await;
    let took = start.elapsed();
    assert!(backend.post_counts().values().all(|c| *c == 1));
    let _ = stop.send(());
    run.await.expect("join").expect("stop");
    took
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 100_000 } else { 300 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base: std::path::PathBuf = std::env::var_os("LANED_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    println!("| drain of a {n}-sale backlog | seconds | sales/s |");
    println!("|---|---:|---:|");
    for (label, batch) in [
        ("batches of 100 (POST /v1/sales:batch)", true),
        ("single PUTs", false),
    ] {
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        rt.block_on(backlog(dir.path(), n));
        let took = rt.block_on(drain(dir.path(), n, batch));
        println!(
            "| {label} | {:.1} | {:.0} |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }
}
