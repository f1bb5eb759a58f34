//! The fiscal journal's verification (issue 19): how fast `laned verify`
//! (the release binary, a separate process) checks every link, grand total
//! and receipt number of a lane holding 1,000,000 documents, side by side
//! with reading the database file itself from start to end (the speed of
//! the disk, or of the page cache when the file is in it).
//!
//! `cargo bench -- journal` runs it at 1,000,000 documents
//! (`LANED_BENCH_SALES` to change it); under `cargo test` at 300.
//! `LANED_BENCH_KEEP=1` keeps the lane it built and prints where;
//! `LANED_BENCH_LANE=DIR` measures that lane instead of building one.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support;

const ROUNDS: usize = 3;

pub fn main(full: bool) {
    let n: usize = std::env::var("LANED_BENCH_SALES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 1_000_000 } else { 300 });
    let base = std::env::var_os("LANED_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    std::fs::create_dir_all(&base).expect("bench dir");
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let lane: std::path::PathBuf = match std::env::var_os("LANED_BENCH_LANE") {
        Some(d) => d.into(),
        None => {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(support::backlog(dir.path(), n));
            dir.path().to_owned()
        }
    };
    let db = lane.join(laned::lane::store::DB_FILE);
    let bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
    let mut read = vec![];
    let mut verify = vec![];
    // Interleaved, so that both meet the same page cache.
    for _ in 0..ROUNDS {
        read.push(read_file(&db));
        verify.push(run_verify(&lane, n));
    }
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    let (r, v) = (median(&mut read), median(&mut verify));
    if std::env::var_os("LANED_BENCH_KEEP").is_some() {
        println!("kept the lane in {}", dir.keep().display());
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "| {n} documents, database {mb:.0} MB | seconds | MB/s | documents/s |\n\
         |---|---:|---:|---:|\n\
         | reading the file from start to end | {:.2} | {:.0} | |\n\
         | laned verify (every link, total, number) | {:.2} | {:.0} | {:.0} |",
        r.as_secs_f64(),
        mb / r.as_secs_f64(),
        v.as_secs_f64(),
        mb / v.as_secs_f64(),
        n as f64 / v.as_secs_f64(),
    );
}

fn read_file(path: &Path) -> Duration {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf).expect("read") > 0 {}
    t.elapsed()
}

fn run_verify(dir: &Path, n: usize) -> Duration {
    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_laned"))
        .args(["verify", "--data-dir"])
        .arg(dir)
        .env_remove("LANED_CONFIG")
        .output()
        .expect("laned verify");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(&format!("intact: {n} documents")),
        "laned verify: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}
