//! The fiscal journal's verification (issue 19): how fast `laned verify`
//! (the release binary, a separate process) checks every link, grand total
//! and receipt number of a lane holding 1,000,000 documents, side by side
//! with reading the database file itself from start to end (the speed of
//! the disk, or of the page cache when the file is in it).
//!
//! `cargo bench -- journal` runs it at 1,000,000 documents
//! (`LANED_BENCH_SALES` to change it); under `cargo test` at 300.
//! Beside it, the floor of any verifier on this machine: the documents'
//! bytes, already in memory, hashed and read by serde_json keeping
//! nothing, on every core, and read from the database by SQLite on one
//! thread.
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
    // The floor of any verifier that reads every byte: the documents'
    // bytes (in memory, no SQLite) hashed, and read by serde_json keeping
    // nothing, on every core.
    let bodies = bodies(&db);
    let mut read = vec![];
    let mut verify = vec![];
    let (mut hashing, mut parsing, mut scanning) = (vec![], vec![], vec![]);
    // Interleaved, so that all meet the same page cache and machine.
    for _ in 0..ROUNDS {
        read.push(read_file(&db));
        verify.push(run_verify(&lane, n));
        hashing.push(on_every_core(&bodies, |b| {
            std::hint::black_box(laned::common::hash::sha256(b));
        }));
        parsing.push(on_every_core(&bodies, |b| {
            let _ = std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(b));
        }));
        scanning.push(scan(&db));
    }
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    let (r, v) = (median(&mut read), median(&mut verify));
    let (h, p) = (median(&mut hashing), median(&mut parsing));
    let q = median(&mut scanning);
    let body_mb = bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "| the documents' bytes only ({body_mb:.0} MB), on every core | seconds | MB of documents/s |\n\
         |---|---:|---:|\n\
         | SHA-256 of each | {:.2} | {:.0} |\n\
         | serde_json reading each, keeping nothing | {:.2} | {:.0} |\n\
         | SQLite reading each from the database (one thread, lane order) | {:.2} | {:.0} |\n\
         | laned verify, for comparison | {:.2} | {:.0} |",
        h.as_secs_f64(),
        body_mb / h.as_secs_f64(),
        p.as_secs_f64(),
        body_mb / p.as_secs_f64(),
        q.as_secs_f64(),
        body_mb / q.as_secs_f64(),
        v.as_secs_f64(),
        body_mb / v.as_secs_f64(),
    );
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

/// Every document's exact bytes, in lane order.
fn bodies(db: &Path) -> Vec<Vec<u8>> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    let mut st = c
        .prepare("SELECT body FROM sales ORDER BY seq")
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("query")
        .map(|b| b.expect("row"))
        .collect()
}

/// SQLite reading every document's bytes in lane order, on one thread, as
/// `laned verify` does, touching them without copying them anywhere.
fn scan(db: &Path) -> Duration {
    let t = Instant::now();
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    let mut st = c
        .prepare("SELECT seq, body FROM sales UNION ALL SELECT seq, body FROM closings ORDER BY 1")
        .expect("prepare");
    let mut rows = st.query([]).expect("query");
    let mut sum = 0usize;
    while let Some(r) = rows.next().expect("row") {
        let b = r.get_ref(1).expect("body").as_bytes().expect("bytes");
        sum += b.len() + usize::from(b.last().copied().unwrap_or_default());
    }
    std::hint::black_box(sum);
    t.elapsed()
}

/// `f` on each document, the documents split across every core.
fn on_every_core(docs: &[Vec<u8>], f: impl Fn(&[u8]) + Sync) -> Duration {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in docs.chunks(docs.len().div_ceil(cores).max(1)) {
            let f = &f;
            s.spawn(move || part.iter().for_each(|d| f(d)));
        }
    });
    t.elapsed()
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
