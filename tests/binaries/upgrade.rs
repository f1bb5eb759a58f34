//! A package upgrade: the service restarts on the new binary, which applies
//! the missing migrations at start and keeps every sale and number; a
//! migration that fails leaves the database byte-identical and the daemon
//! exits non-zero (systemd marks the unit failed) with one clear line.
//! (A downgrade, a database from a newer laned, is refused untouched:
//! `tests/instance_and_schema.rs`.)

use crate::common;

use std::path::Path;

use common::{RealLane, all_sales, client, sale_with};
use serde_json::Value;
use uuid::Uuid;

/// The schema version before the newest migration, and that migration.
const PREVIOUS: i64 = 8;
const NEWEST: &str = "0009_acks";
/// What the newest migration adds, taken out again.
const UNDO_NEWEST: &str = "DROP TABLE backend_key; ALTER TABLE sales DROP COLUMN ack; \
                           ALTER TABLE closings DROP COLUMN ack; \
                           ALTER TABLE closings DROP COLUMN certificate;";
/// Something the newest migration cannot get past (left, say, by a support
/// session's experiment), and SQLite's complaint.
const OBSTACLE: &str = "CREATE TABLE backend_key (x)";
const OBSTACLE_GONE: &str = "DROP TABLE backend_key";
const OBSTACLE_ERROR: &str = "table backend_key already exists";

/// A data directory as the previous release leaves it: the real binary
/// records `n` sales and stops on SIGTERM, then the newest migration's
/// objects are taken out and the version set back (0009 adds the pinned
/// back-end key's table and the acks' columns; that every upgrade path ends in the schema of a fresh
/// database is `store::migrate`'s unit test). Returns the sales as
/// the lane reported them.
async fn previous_release_lane(dir: &Path, n: usize) -> Vec<Value> {
    let mut lane = RealLane::spawn(dir, "L03", &[]).expect("starts");
    let http = client();
    for i in 0..n {
        let r = http
            .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
            .json(&sale_with(&format!("SKU{i}"), 1, 100 + i as i64))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let sales = all_sales(&http, &lane.base).await;
    stop(&mut lane);
    let c = rusqlite::Connection::open(dir.join("lane.db")).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version,
        PREVIOUS + 1,
        "a migration was added: make this test build the previous release's database"
    );
    c.execute_batch(&format!(
        "BEGIN; {UNDO_NEWEST} PRAGMA user_version = {PREVIOUS}; COMMIT;"
    ))
    .unwrap();
    sales
}

fn stop(lane: &mut RealLane) {
    let status = lane.terminate();
    assert_eq!(status.code(), Some(0), "{}", lane.stderr());
}

fn user_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_binary_migrates_at_start_and_keeps_every_sale_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let before = previous_release_lane(dir.path(), 5).await;
    assert_eq!(user_version(&dir.path().join("lane.db")), PREVIOUS);

    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("the new binary starts");
    lane.wait_for_log(NEWEST, 1);
    assert!(
        lane.stderr()
            .lines()
            .any(|l| l.contains("applied schema migration") && l.contains(NEWEST)),
        "{}",
        lane.stderr()
    );
    let http = client();
    assert_eq!(
        all_sales(&http, &lane.base).await,
        before,
        "a sale changed across the upgrade"
    );
    let r = http
        .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
        .json(&sale_with("AFTER", 1, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["receipt_no"], 6, "{body}");
    // The figures the status report keeps were counted from the sales the
    // previous release stored, and follow the new one.
    let status = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(status["counts"]["pending"], 6, "{status}");
    stop(&mut lane);
    assert_eq!(user_version(&dir.path().join("lane.db")), PREVIOUS + 1);

    // The next restart has nothing left to migrate.
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("restarts");
    stop(&mut lane);
    assert!(!lane.stderr().contains("applied schema migration"));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_leaves_the_database_untouched_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    previous_release_lane(dir.path(), 3).await;
    let db = dir.path().join("lane.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(OBSTACLE)
        .unwrap();
    let bytes = std::fs::read(&db).unwrap();

    let refused = match RealLane::spawn(dir.path(), "L03", &[]) {
        Ok(lane) => panic!("started at {} on a database it cannot migrate", lane.base),
        Err(r) => r,
    };
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    let errors: Vec<&str> = refused
        .stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line, not: {}", refused.stderr);
    for what in [NEWEST, "left at the previous version", OBSTACLE_ERROR] {
        assert!(errors[0].contains(what), "{what:?} not in {:?}", errors[0]);
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the database was modified"
    );
    assert!(!dir.path().join("lane.db-wal").exists() || wal_is_empty(dir.path()));
    assert_eq!(user_version(&db), PREVIOUS);

    // Once the obstacle is gone (support's fix), the same binary upgrades.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(OBSTACLE_GONE)
        .unwrap();
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts after the fix");
    assert_eq!(all_sales(&client(), &lane.base).await.len(), 3);
    stop(&mut lane);
    assert_eq!(user_version(&db), PREVIOUS + 1);
}

/// A WAL file left behind holds no committed frames (SQLite may leave a
/// zero-length one).
fn wal_is_empty(dir: &Path) -> bool {
    std::fs::metadata(dir.join("lane.db-wal")).map_or(true, |m| m.len() == 0)
}
