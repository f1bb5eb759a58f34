//! Export benchmark (issue 6): `laned export` of a large backlog while the
//! daemon keeps taking sales. Reports the export's rate and peak memory and
//! the daemon's answer times to two registers before and during the export.
//!
//! `cargo bench -- export` runs it with 100,000 sales (override with
//! `LANED_BENCH_SALES`); under `cargo test` it runs 200 so that it stays
//! working.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::support;

pub fn main(full: bool) {
    let n: usize = std::env::var("LANED_BENCH_SALES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 100_000 } else { 200 });
    let base = std::env::var_os("LANED_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(support::backlog(dir.path(), n));

    let mut child = Command::new(env!("CARGO_BIN_EXE_laned"))
        .args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "BENCH"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LANED_CONFIG")
        .env("LANED_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn laned");
    let url = support::listening_url(&mut child);

    let phase = Arc::new(AtomicBool::new(false)); // false: before, true: during
    let done = Arc::new(AtomicBool::new(false));
    let registers: Vec<_> = (0..2)
        .map(|_| {
            let (url, phase, done) = (url.clone(), phase.clone(), done.clone());
            rt.spawn(async move {
                let http = reqwest::Client::new();
                let (mut before, mut during) = (vec![], vec![]);
                let body = serde_json::json!({
                    "kind": "sale", "references": null, "business_date": "2026-11-22",
                    "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES",
                    "cashier": "E042",
                    "lines": [{"sku": "X", "name": "Milk 1L", "quantity": "1",
                               "unit_price": 100, "discount": 0, "tax_code": "A", "amount": 100}],
                    "payments": [{"payment_id": Uuid::new_v4(), "method": "cash", "amount": 100}],
                    "total": 100, "change": 0,
                    "till": {"invoice_no": "1", "register": "R1"}, "extra": {}});
                while !done.load(Ordering::SeqCst) {
                    let p = phase.load(Ordering::SeqCst);
                    let t = Instant::now();
                    let r = http
                        .put(format!("{url}/v1/sales/{}", Uuid::new_v4()))
                        .json(&body)
                        .send()
                        .await
                        .expect("answer");
                    assert_eq!(r.status(), 201);
                    let took = t.elapsed();
                    if p && phase.load(Ordering::SeqCst) {
                        during.push(took);
                    } else if !p {
                        before.push(took);
                    }
                }
                (before, during)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(if full { 3 } else { 0 }));

    // GNU time reports the export's peak resident memory, when installed.
    let gnu_time = std::path::Path::new("/usr/bin/time").exists();
    let mut cmd = if gnu_time {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M"]).arg(env!("CARGO_BIN_EXE_laned"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_laned"))
    };
    let out_file = dir.path().join("export.ndjson");
    phase.store(true, Ordering::SeqCst);
    let t = Instant::now();
    let out = cmd
        .args(["export", "--state", "all", "-o"])
        .arg(&out_file)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LANED_CONFIG")
        .output()
        .expect("laned export");
    let took = t.elapsed();
    done.store(true, Ordering::SeqCst);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let exported: usize = err
        .split("exported ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("export count");
    let peak_kib = if gnu_time {
        err.lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
    } else {
        None
    };
    let size = std::fs::metadata(&out_file).map(|m| m.len()).unwrap_or(0);

    let (mut before, mut during) = (vec![], vec![]);
    for r in registers {
        let (b, d) = rt.block_on(r).expect("register");
        before.extend(b);
        during.extend(d);
    }
    let _ = child.kill();
    let _ = child.wait();

    let pct = |v: &mut Vec<Duration>, q: f64| -> String {
        if v.is_empty() {
            return "-".into();
        }
        v.sort();
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        format!("{:.2} ms", v[i].as_secs_f64() * 1000.0)
    };
    println!(
        "| export | {exported} sales | {:.2} s | {:.0} sales/s | {:.1} MB | peak RSS {} |",
        took.as_secs_f64(),
        exported as f64 / took.as_secs_f64(),
        size as f64 / 1e6,
        peak_kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
    );
    for (name, v) in [("before", &mut before), ("during", &mut during)] {
        let n = v.len();
        println!(
            "| answers {name} the export | {n} | p50 {} | p99 {} | max {} |",
            pct(v, 0.5),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
}
