//! Drain benchmark: how fast a lane empties a backlog into the scripted
//! back-end over loopback, with batches of 100 and with single PUTs; then
//! the same through a lossy back-end (a share of requests failing at
//! random, seeded: 503 or 429 with `Retry-After: 1`, 500, answers lost
//! after the commit), as a share of the clean rate. `cargo bench -- drain`
//! (`LANED_SEED` picks the faults); under `cargo test` it runs a few
//! hundred sales only, so the benchmark itself stays working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::support::{backlog, config};
use laned::common::clock::SystemClock;
use laned::lane::daemon::Daemon;

/// Starts the lane on its backlog and times the drain until the back-end
/// holds every sale; `faults`: (seed, share of requests that fail).
async fn drain(
    dir: &std::path::Path,
    n: usize,
    batch: bool,
    faults: Option<(u64, f64)>,
) -> (Duration, u32) {
    let backend = Backend::start(Some("bench")).await;
    if !batch {
        backend.without_batch();
    }
    if let Some((seed, rate)) = faults {
        backend.random_faults(seed, rate);
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
    (took, backend.faults_injected().values().sum())
}

pub fn main(full: bool) {
    // The lossy runs wait out every failure (a second or so: the back-end's
    // Retry-After, or the backoff's jitter), so they drain fewer sales:
    // enough batches (or PUTs) for a few hundred requests each.
    let (n, lossy_batched, lossy_single) = if full {
        (100_000, 20_000, 2_000)
    } else {
        (300, 200, 40)
    };
    let seed: u64 = std::env::var("LANED_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let base: std::path::PathBuf = std::env::var_os("LANED_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let run = |n: usize, batch: bool, faults: Option<(u64, f64)>| {
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        rt.block_on(backlog(dir.path(), n));
        let (took, injected) = rt.block_on(drain(dir.path(), n, batch, faults));
        (n as f64 / took.as_secs_f64(), took, injected)
    };
    println!("faults seeded with {seed} (LANED_SEED)");
    println!("| drain | sales | faults injected | seconds | sales/s | share of the clean rate |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, batch, lossy_n) in [
        ("batches of 100 (POST /v1/sales:batch)", true, lossy_batched),
        ("single PUTs", false, lossy_single),
    ] {
        let (clean, took, _) = run(n, batch, None);
        println!(
            "| {label}, clean | {n} | 0 | {:.1} | {clean:.0} | 100% |",
            took.as_secs_f64()
        );
        for rate in [0.01, 0.12] {
            let (rate_sales, took, injected) = run(lossy_n, batch, Some((seed, rate)));
            println!(
                "| {label}, {:.0}% of requests failing | {lossy_n} | {injected} | {:.1} | {rate_sales:.0} | {:.1}% |",
                rate * 100.0,
                took.as_secs_f64(),
                100.0 * rate_sales / clean
            );
        }
    }
}
