//! A full disk while sales stream: the lane's data directory and salemap's
//! database on a small tmpfs, filled to the last byte at random moments
//! (and laned killed and restarted while it is full, now and then), then
//! freed. Sales are refused `507 storage_full` while it is full, the tills
//! retry, and nothing acknowledged is lost or misnumbered.
//!
//! Mounting needs root (CI runs as root): elsewhere the test says so and
//! skips, unless `LANED_REQUIRE_MOUNT=1`, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use laned::salemap::Database;
use rand::{RngExt, SeedableRng};

use crate::{Rig, Setup, Tills, any_batch, common, drained, judge, scale, tills};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("laned-attack")
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_owned())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("LANED_REQUIRE_MOUNT").as_deref() != Ok("1"),
                    "LANED_REQUIRE_MOUNT=1 but a tmpfs could not be mounted: {why}"
                );
                common::skipped(
                    "the full disk",
                    &format!("cannot mount a tmpfs here (needs root): {why}"),
                    "LANED_REQUIRE_MOUNT",
                );
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `dir` to the last byte; the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0x5a_u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // And the last partial chunk's worth.
    while f.write_all(&chunk[..512]).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_while_sales_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let scale = scale();
    // Room for what the run stores (it grows with the size of the run),
    // until the filler takes the rest.
    let size = format!("{}m", 48 * scale);
    let Some(fs) = Tmpfs::mount(&dir.path().join("small"), &size) else {
        return;
    };
    let seed = common::seed("a_full_disk_while_sales_stream");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let db = Database::Sqlite(fs.0.join("salemap.db"));
    let lane_dir = fs.0.join("lane");
    let batch = any_batch(&mut rng);
    let Rig {
        mut backend,
        proxy,
        mut lane,
        base,
        ..
    } = Rig::start(dir.path(), &db, &lane_dir, seed, batch, Setup::default()).await;
    let ledger = tills::Shared::default();
    let tills = Tills::start(0..2 + 2 * scale, &base, seed, &ledger, &[]);
    proxy.set_rate(0.05);

    let (mut fills, mut refusing, mut refused_starts) = (0, 0, 0);
    for _ in 0..3 * scale {
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        let (full_before, acked_before) = {
            let l = ledger.lock();
            (l.answers.get("507 storage_full").copied(), l.acked.len())
        };
        let filler = fill(&fs.0);
        fills += 1;
        // A sale refused for want of space (the disk is full for the lane),
        // or five hundred more sales taken: SQLite reuses the space its
        // write-ahead log already holds, so a full disk refuses writes only
        // once that is used up.
        ledger
            .until(
                "a sale refused 507 or five hundred taken on the full disk",
                |l| {
                    l.answers.get("507 storage_full").copied() > full_before
                        || l.acked.len() >= acked_before + 500
                },
            )
            .await;
        if ledger.lock().answers.get("507 storage_full").copied() > full_before {
            refusing += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        // Now and then the lane dies while the disk is full, and is
        // started again before space is freed: it may refuse to start,
        // never lose what it holds.
        let crashed = rng.random_bool(0.3);
        if crashed {
            lane.kill9();
            if lane.try_start(None).is_err() {
                refused_starts += 1;
            }
        }
        std::fs::remove_file(&filler).expect("free the space");
        if !lane.is_running() {
            lane.start(None);
        }
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
    proxy.set_rate(0.0);
    tills.finish().await;
    let drain = drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();
    let title = format!(
        "a full disk ({size} tmpfs) while sales stream, seed {seed}, scale {scale}, batches of up to {batch}\n  \
         the disk filled {fills} times ({refusing} of them until a sale was refused); kill -9 of laned while full: {} ({refused_starts} \
         restarts on the full disk refused); backlog drained {drain:.1?} after the faults stopped\n  \
         faults by kind: {:?}",
        lane.kills,
        proxy.counts()
    );
    let logs = [("laned", lane.logs()), ("salemap", backend.logs())];
    judge(&title, ledger.take(), &lane_dir, &db, &logs, None).await;
    assert!(
        refusing > 0,
        "seed {seed}: the full disk never refused a sale in {fills} fills"
    );
}
