//! `laned export` of 100,000 sales while the daemon keeps taking sales:
//! the export is one consistent snapshot (every sale up to some point, in
//! order, none missing, none half-written) and the daemon goes on answering.
//! How fast both are is measured by `cargo bench -- export`.

use crate::{common, support};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::RealLane;
use serde_json::Value;
use uuid::Uuid;

const SEEDED: usize = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_100k_sales_while_the_daemon_sells_is_complete_and_consistent() {
    let dir = tempfile::tempdir().unwrap();
    support::backlog(dir.path(), SEEDED).await;
    let lane = RealLane::spawn(dir.path(), "BENCH", &[]).expect("starts");

    // Two registers keep selling until the export is done.
    let exporting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (first, mut firsts) = tokio::sync::mpsc::channel::<()>(2);
    let mut registers = vec![];
    for _ in 0..2 {
        let (base, exporting, done) = (lane.base.clone(), exporting.clone(), done.clone());
        let first = first.clone();
        registers.push(tokio::spawn(async move {
            let http = common::client();
            // (id, answered before the export started, answered during it)
            let mut sold: Vec<(String, bool, bool)> = vec![];
            while !done.load(Ordering::SeqCst) {
                let before = !exporting.load(Ordering::SeqCst);
                let id = Uuid::new_v4().to_string();
                let r = http
                    .put(format!("{base}/v1/sales/{id}"))
                    .json(&common::sale())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let during = exporting.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst);
                if sold.is_empty() {
                    let _ = first.send(()).await;
                }
                sold.push((id, before, during));
            }
            sold
        }));
    }
    // Let each register be answered once before the export starts.
    for _ in 0..2 {
        firsts.recv().await.unwrap();
    }

    let file = dir.path().join("all.ndjson");
    exporting.store(true, Ordering::SeqCst);
    let out = tokio::task::spawn_blocking({
        let (d, f) = (dir.path().to_owned(), file.clone());
        move || {
            std::process::Command::new(common::laned_bin())
                .args(["export", "--state", "all", "-o"])
                .arg(&f)
                .arg("--data-dir")
                .arg(&d)
                .env_remove("LANED_CONFIG")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    done.store(true, Ordering::SeqCst);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");

    let mut sold = vec![];
    for r in registers {
        sold.extend(r.await.unwrap());
    }
    assert!(
        sold.iter().any(|s| s.2),
        "no sale was answered while the export ran"
    );

    // Every line parses; seq runs 1..=n without a gap: a snapshot, not a
    // scan that skipped or repeated rows being written.
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let n = lines.len();
    assert!(n >= SEEDED + 2, "{n} lines");
    assert!(err.contains(&format!("exported {n} sales")), "{err}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64 + 1);
        assert_eq!(l["state"], "pending");
        assert_eq!(l["envelope"]["transaction_id"], l["transaction_id"]);
        assert_eq!(l["envelope"]["lane_id"], "BENCH");
    }
    // Every sale answered before the export began is in it.
    let exported: HashSet<&str> = lines
        .iter()
        .map(|l| l["transaction_id"].as_str().unwrap())
        .collect();
    for (id, before, _) in &sold {
        if *before {
            assert!(exported.contains(id.as_str()), "{id} is missing");
        }
    }

    // The lines are exactly the database's first n sales, as it holds them
    // once the daemon has stopped.
    drop(lane);
    let after = std::process::Command::new(common::laned_bin())
        .args(["export", "--state", "all", "--data-dir"])
        .arg(dir.path())
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert!(after.status.success());
    let after = String::from_utf8(after.stdout).unwrap();
    let total = after.lines().count();
    assert_eq!(total, SEEDED + sold.len());
    for (a, b) in text.lines().zip(after.lines()) {
        assert_eq!(a, b);
    }
}
