//! The data directory belongs to one daemon and one lane; a database from a
//! newer laned or another program is refused and left byte-identical; a
//! SIGTERM finishes what is in flight and exits 0.

use crate::common;

use common::{RealLane, client, sale_with};
use uuid::Uuid;

const EXIT_LOCKED: i32 = 3;
const EXIT_DATABASE_REFUSED: i32 = 4;

#[test]
fn a_second_daemon_on_the_same_data_dir_exits_non_zero_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = RealLane::spawn(dir.path(), "L03", &[]).expect("first starts");
    let stderr = RealLane::expect_refusal(
        dir.path(),
        "L03",
        EXIT_LOCKED,
        &format!("pid {}", first.pid()),
    );
    assert!(
        stderr.contains(first.base.trim_start_matches("http://")),
        "the message does not name the running daemon's address: {stderr}"
    );
    drop(first);
    // Once the first is gone (even killed) the directory is free again.
    RealLane::spawn(dir.path(), "L03", &[]).expect("starts after the first is gone");
}

fn refused_untouched(prepare: impl FnOnce(&rusqlite::Connection), expect_in_message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lane.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        prepare(&c);
    }
    let before = std::fs::read(&db).unwrap();
    RealLane::expect_refusal(dir.path(), "L03", EXIT_DATABASE_REFUSED, expect_in_message);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the refused database was modified"
    );
    assert!(
        !dir.path().join("lane.db-wal").exists(),
        "a WAL was created next to it"
    );
}

#[test]
fn a_database_from_a_newer_laned_is_refused_and_left_byte_identical() {
    refused_untouched(
        |c| {
            c.execute_batch(
                "CREATE TABLE sales (seq INTEGER PRIMARY KEY); INSERT INTO sales VALUES (1);
                 PRAGMA application_id = 1279348293; PRAGMA user_version = 99;",
            )
            .unwrap();
        },
        "newer laned",
    );
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_byte_identical() {
    refused_untouched(
        |c| {
            c.execute_batch("CREATE TABLE t (x); PRAGMA application_id = 42;")
                .unwrap();
        },
        "not a laned database",
    );
}

#[test]
fn an_sqlite_file_of_another_program_without_an_application_id_is_refused_untouched() {
    refused_untouched(
        |c| {
            c.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
                .unwrap();
        },
        "not a laned database",
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lane.db");
    let junk = b"this is a spreadsheet, not a database\n".repeat(200);
    std::fs::write(&db, &junk).unwrap();
    RealLane::expect_refusal(
        dir.path(),
        "L03",
        EXIT_DATABASE_REFUSED,
        "not a laned database",
    );
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}

#[test]
fn another_lanes_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(RealLane::spawn(dir.path(), "L03", &[]).expect("L03 starts"));
    RealLane::expect_refusal(
        dir.path(),
        "L04",
        EXIT_DATABASE_REFUSED,
        "belongs to lane \"L03\"",
    );
}

#[test]
fn a_non_loopback_listen_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::laned_bin())
        .args([
            "serve",
            "--lane-id",
            "L03",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("LANED_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API token"));
    assert!(
        !dir.path().join("lane.db").exists(),
        "refused config still created a database"
    );
}

/// `laned serve` on a fresh data directory with `extra`; what it left there.
fn serve_refused(extra: &[&str]) -> (Option<i32>, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lane");
    let out = std::process::Command::new(common::laned_bin())
        .args(["serve", "--lane-id", "L03", "--data-dir"])
        .arg(&data)
        .args(extra)
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    let left = std::fs::read_dir(&data)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        left,
    )
}

#[test]
fn serve_checks_its_port_and_back_end_before_it_creates_a_database() {
    // A port another program holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let (code, stderr, left) = serve_refused(&["--listen", &port]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
    assert!(
        !left.iter().any(|f| f.starts_with("lane.db")),
        "a refused start created the database: {left:?}"
    );
    // A back-end URL the lane would refuse to use (plain HTTP to another
    // machine).
    let (code, stderr, left) = serve_refused(&[
        "--listen",
        "127.0.0.1:0",
        "--backend-url",
        "http://pos.example.com/",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("https"), "{stderr}");
    assert!(
        left.is_empty(),
        "a refused configuration touched the disk: {left:?}"
    );
}

#[cfg(unix)]
#[test]
fn data_dir_is_0700_and_database_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lane-data");
    let _lane = RealLane::spawn(&data, "L03", &[]).expect("starts");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("lane.db")), 0o600);
    assert_eq!(mode(&data.join("laned.lock")), 0o600);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_sales_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    let http = client();
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut clients = vec![];
    for c in 0..8 {
        let (http, base, acks) = (http.clone(), lane.base.clone(), ack_tx.clone());
        clients.push(tokio::spawn(async move {
            for i in 0.. {
                let id = Uuid::new_v4().to_string();
                let Ok(r) = http
                    .put(format!("{base}/v1/sales/{id}"))
                    .json(&sale_with(&format!("T{c}-{i}"), 1, 100))
                    .send()
                    .await
                else {
                    return;
                };
                if !r.status().is_success() || acks.send(id).is_err() {
                    return;
                }
            }
        }));
    }
    drop(ack_tx);
    let mut acked = vec![];
    while let Some(id) = ack_rx.recv().await {
        acked.push(id);
        if acked.len() == 100 {
            common::sigterm(&lane.child);
        }
    }
    for c in clients {
        c.await.unwrap();
    }
    let status = lane.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr: {}", lane.stderr());
    assert!(lane.stderr().contains("SIGTERM received"));

    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("restarts");
    for id in &acked {
        let r = http
            .get(format!("{}/v1/sales/{id}", lane.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "sale {id} answered 2xx before shutdown is missing"
        );
    }
    let all = common::all_sales(&http, &lane.base).await;
    let n = all.len() as i64;
    assert_eq!(common::receipt_numbers(&all), (1..=n).collect::<Vec<_>>());
}
