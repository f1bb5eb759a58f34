//! Drain benchmark (issue 3): how fast a lane empties a backlog into the
//! scripted back-end over loopback, with batches of 100 and with single
//! PUTs. `cargo bench --bench drain`; under `cargo test` it runs a few
//! hundred sales only, so the benchmark itself stays working.

#[path = "../common/backend.rs"]
#[allow(dead_code)]
mod backend;
#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::Backend;
use laned::clock::SystemClock;
use laned::daemon::Daemon;
use support::{backlog, config};

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
