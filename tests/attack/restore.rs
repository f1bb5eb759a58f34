//! A lane restored from an old backup while head office holds newer
//! sales of it: the tills are refused (`409 restored_from_old_copy`) until
//! support acknowledges, then numbering continues above head office's, and
//! no receipt number is ever held twice.

use std::collections::HashSet;
use std::time::Duration;

use laned::salemap::Database;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::cluster::binary;
use crate::{Rig, Setup, Tills, any_batch, checker, common, drained, judge, scale, tills};

/// The transaction ids a backup file holds.
fn ids_in(backup: &std::path::Path) -> HashSet<String> {
    let conn =
        rusqlite::Connection::open_with_flags(backup, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the backup");
    let mut st = conn
        .prepare("SELECT transaction_id FROM sales")
        .expect("prepare");
    st.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// `laned backup -o FILE` of the running lane, through the real CLI (of
/// the build under attack).
fn backup(lane_dir: &std::path::Path, to: &std::path::Path) {
    let out = std::process::Command::new(binary("LANED_ATTACK_LANED", common::laned_bin()))
        .arg("backup")
        .arg("--data-dir")
        .arg(lane_dir)
        .arg("-o")
        .arg(to)
        .env_remove("LANED_CONFIG")
        .output()
        .expect("laned backup");
    assert!(
        out.status.success(),
        "laned backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The disk "dies": the lane's database files are replaced by the backup.
fn put_back(backup: &std::path::Path, lane_dir: &std::path::Path) {
    let db = lane_dir.join(laned::lane::store::DB_FILE);
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", f.display()),
        }
    }
    std::fs::copy(backup, &db).expect("put the backup back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_restored_from_an_old_backup_never_reuses_a_number() {
    let seed = common::seed("a_lane_restored_from_an_old_backup");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    let lane_dir = dir.path().join("lane");
    let batch = any_batch(&mut rng);
    let Rig {
        mut backend,
        proxy,
        mut lane,
        base,
        ..
    } = Rig::start(dir.path(), &db, &lane_dir, seed, batch, Setup::default()).await;
    let ledger = tills::Shared::default();
    let tills_per_phase = 2 + scale;
    let mut restores = 0;
    let mut gone = HashSet::new();
    let mut next_till = 0;
    proxy.set_rate(0.1);

    for _ in 0..scale {
        // Sales stream; a backup is taken while they do; more sales follow
        // and are delivered; then the till's disk dies.
        let tills = Tills::start(
            next_till..next_till + tills_per_phase,
            &base,
            seed ^ u64::from(next_till),
            &ledger,
            &["restored_from_old_copy"],
        );
        next_till += tills_per_phase;
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        let copy = dir.path().join(format!("backup-{restores}.db"));
        backup(&lane_dir, &copy);
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
        tills.finish().await;
        proxy.set_rate(0.0);
        drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
        lane.kill9();
        let kept = ids_in(&copy);
        gone.extend(
            ledger
                .lock()
                .acked
                .iter()
                .filter(|a| !kept.contains(&a.transaction_id))
                .map(|a| a.transaction_id.clone()),
        );
        put_back(&copy, &lane_dir);
        restores += 1;

        // The lane comes back from the backup, its back-end reachable: the
        // tills are refused until support acknowledges.
        lane.start(None);
        let refused_before = ledger.lock().refused.values().sum::<u64>();
        let tills = Tills::start(
            next_till..next_till + tills_per_phase,
            &base,
            seed ^ u64::from(next_till),
            &ledger,
            &["restored_from_old_copy"],
        );
        next_till += tills_per_phase;
        let http = common::client();
        // The first refusal: the guard is up (raised by the first
        // heartbeat, within the lane's start-up wait).
        ledger
            .until("a sale refused after the restore", |l| {
                l.refused.values().sum::<u64>() > refused_before
            })
            .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        let token = std::fs::read_to_string(lane_dir.join("admin-token")).expect("admin token");
        let r = http
            .post(format!("{base}/v1/admin/acknowledge-restore"))
            .bearer_auth(token.trim())
            .header("X-Laned-Actor", "attack:support")
            .json(&json!({"reason": format!("attack restore {restores}, seed {seed}")}))
            .send()
            .await
            .expect("acknowledge");
        assert_eq!(r.status(), 200, "seed {seed}: acknowledge");
        proxy.set_rate(0.1);
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
        // And a crash after the acknowledgement: it holds.
        if rng.random_bool(0.5) {
            lane.kill9();
            lane.start(None);
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(500..1500))).await;
        tills.finish().await;
    }
    proxy.set_rate(0.0);
    let drain = drained(&base, Duration::from_secs(120), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();
    let refused = ledger.lock().refused.get("restored_from_old_copy").copied();
    assert!(
        refused.is_some_and(|n| n >= u64::from(scale)),
        "seed {seed}: the tills were never refused after a restore ({refused:?})"
    );
    let title = format!(
        "a lane restored from an old backup, seed {seed}, scale {scale}, batches of up to {batch}\n  \
         restores: {restores}; kill -9: laned {}; backlog drained {drain:.1?} after the faults stopped\n  \
         faults by kind: {:?}",
        lane.kills,
        proxy.counts()
    );
    let logs = [("laned", lane.logs()), ("salemap", backend.logs())];
    let restore = checker::Restore { gone };
    judge(&title, ledger.take(), &lane_dir, &db, &logs, Some(&restore)).await;
}
