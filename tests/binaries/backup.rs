//! `laned backup`: a consistent, checked copy while the daemon sells, and
//! a lane that starts from the copy with every sale the copy holds.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use assert_cmd::Command;
use common::RealLane;
use uuid::Uuid;

fn laned() -> Command {
    let mut c = Command::new(common::laned_bin());
    c.env_remove("LANED_CONFIG");
    c
}

/// `laned backup -o dest` of the lane in `data_dir`.
fn backup(data_dir: &std::path::Path, dest: &std::path::Path) -> Command {
    let mut c = laned();
    c.args(["backup", "-o"])
        .arg(dest)
        .arg("--data-dir")
        .arg(data_dir);
    c
}

/// [`backup`], which must be refused (exit 1): what it says on stderr.
async fn refused_backup(data_dir: &std::path::Path, dest: &std::path::Path) -> String {
    let (d, c) = (data_dir.to_owned(), dest.to_owned());
    let stderr = tokio::task::spawn_blocking(move || {
        backup(&d, &c).assert().code(1).get_output().stderr.clone()
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_selling_is_whole_and_a_lane_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let lane = RealLane::spawn(dir.path(), "L05", &[]).expect("starts");
    let http = common::client();
    let mut before = 0;
    for _ in 0..20 {
        let r = http
            .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
            .json(&common::sale())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        before += 1;
    }
    // A register keeps selling while the backup runs.
    let done = Arc::new(AtomicBool::new(false));
    let register = tokio::spawn({
        let (base, done, http) = (lane.base.clone(), done.clone(), http.clone());
        async move {
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                let r = http
                    .put(format!("{base}/v1/sales/{}", Uuid::new_v4()))
                    .json(&common::sale())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                n += 1;
            }
            n
        }
    });
    let copy = dir.path().join("lane-backup.db");
    let out = tokio::task::spawn_blocking({
        let (d, c) = (dir.path().to_owned(), copy.clone());
        move || {
            backup(&d, &c)
                .assert()
                .success()
                .get_output()
                .stdout
                .clone()
        }
    })
    .await
    .unwrap();
    done.store(true, Ordering::SeqCst);
    let during = register.await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("lane L05") && out.contains("integrity check ok"),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No partial file is left behind, and a backup never overwrites.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    let refused = refused_backup(dir.path(), &copy).await;
    assert!(refused.contains("never overwrites"), "{refused}");
    // Into a directory that does not exist: the message names that
    // directory, not the hidden file the copy is first written to.
    let nowhere = dir.path().join("no-such-dir");
    let refused = refused_backup(dir.path(), &nowhere.join("copy.db")).await;
    assert!(
        refused.contains(&format!("{} does not exist", nowhere.display())),
        "{refused}"
    );
    assert!(!refused.contains(".partial"), "{refused}");

    // The copy holds every sale up to some point: numbers 1..n, no gap.
    let c =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let (n, max, last): (i64, i64, i64) = c
        .query_row(
            "SELECT COUNT(*), MAX(receipt_no), (SELECT last FROM counters WHERE series = 'L05')
             FROM sales",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    drop(c);
    assert!(
        n >= before && n <= before + during,
        "{n} of {before}+{during}"
    );
    assert_eq!(max, n);
    assert_eq!(last, n);
    drop(lane);

    // Restored into a new data directory, the copy is a working lane.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join(laned::lane::store::DB_FILE)).unwrap();
    let lane = RealLane::spawn(restored.path(), "L05", &[]).expect("the copy starts");
    let status = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(status["counts"]["pending"], n);
    assert_eq!(status["last_receipt_no"]["L05"], n);
    drop(lane);
    // A missing data directory is a clear failure.
    let missing = laned()
        .args(["backup", "-o", "x.db", "--data-dir"])
        .arg(restored.path().join("nowhere"))
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&missing).contains("no lane database"));
}
