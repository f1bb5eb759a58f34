//! `kill -9` of the salemap binary in the middle of a batch: the batch is
//! one transaction, so it is posted whole or not at all; the lane sends it
//! again and in the end every sale has exactly one document, in lane order,
//! numbered without a gap.

use crate::common;

use std::time::Duration;

use common::{Lane, RealLane};
use serde_json::Value;

const TOKEN: &str = "kill-lane-token";
const SALES: usize = 3000;

fn spawn_salemap(dir: &std::path::Path, addr: &str, database: &str) -> RealLane {
    let mut cmd = std::process::Command::new(common::salemap_bin());
    cmd.args(["serve", "--listen", addr, "--lane-tokens"])
        .arg(dir.join("lanes.toml"))
        .args(["--database", database])
        .args(["--log-level", "info,laned::salemap=debug"]);
    RealLane::spawn_command(cmd).expect("salemap starts")
}

/// Documents held, and the document counter's value, as the killed
/// salemap left them.
type Left = (i64, i64);

const LEFT_SQL: &str = "SELECT (SELECT COUNT(*) FROM posted),
                               COALESCE((SELECT MAX(last_no) FROM doc_counters), 0)";

async fn posted(lane: &Lane) -> u64 {
    lane.status().await["counts"]["posted"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_leaves_no_gap_and_no_duplicate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("salemap.db");
    let url = format!("sqlite:{}", db.display());
    kill_mid_batch(dir.path(), &url, || async {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(LEFT_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_leaves_no_gap_and_no_duplicate_on_postgres() {
    let Some(pg) = common::pg::database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url.clone();
    kill_mid_batch(dir.path(), &pg.url, || async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let r = client.query_one(LEFT_SQL, &[]).await.unwrap();
        (r.get(0), r.get(1))
    })
    .await;
}

/// Kills salemap (on `database`) the moment a 1,000-sale batch arrives,
/// twice, checks with `left` that it kept whole batches only, then lets
/// the lane finish and checks every sale's document.
async fn kill_mid_batch<F, Fut>(dir: &std::path::Path, database: &str, left: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Left>,
{
    std::fs::write(
        dir.join("lanes.toml"),
        format!(
            "[lanes]\nL03 = \"{}\"\n",
            laned::salemap::tokens::hash(TOKEN)
        ),
    )
    .unwrap();
    // A fixed address, so the lane finds salemap again after each restart.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .to_string();

    // The backlog is rung while the back-end is down, so deliveries are
    // full batches of 1,000.
    let mut cfg = common::config_with_backend(&dir.join("lane"), &format!("http://{addr}"), TOKEN);
    cfg.drain.batch_size = 1000;
    cfg.drain.backoff_base = Duration::from_millis(50);
    cfg.drain.backoff_cap = Duration::from_millis(200);
    let lane = Lane::start_with(cfg).await;
    let ids = lane.ring(SALES).await;
    assert_eq!(ids.len(), SALES);

    for round in 1..=2 {
        let mut sm = spawn_salemap(dir, &addr, database);
        // The moment a batch arrives, before it can be committed.
        tokio::task::block_in_place(|| sm.wait_for_log("batch received", 1));
        sm.kill9();
        let p = posted(&lane).await;
        assert!(
            p < SALES as u64,
            "round {round}: everything posted before the kill"
        );
        // What the killed salemap left: whole batches only, and a document
        // counter that matches them exactly.
        let (rows, last) = left().await;
        assert_eq!(rows % 1000, 0, "round {round}: a batch was half committed");
        assert_eq!(
            last, rows,
            "round {round}: document numbers and rows disagree"
        );
    }
    let sm = spawn_salemap(dir, &addr, database);
    lane.until("every sale posted", || async {
        posted(&lane).await == SALES as u64
    })
    .await;

    let http = common::client();
    let sales = common::all_sales(&lane.http, &lane.base).await;
    let mut numbers = Vec::with_capacity(SALES);
    for s in &sales {
        let id = s["transaction_id"].as_str().unwrap();
        let doc: Value = http
            .get(format!("{}/v1/sales/{id}", sm.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let n: i64 = doc["doc_no"]
            .as_str()
            .and_then(|d| d.rsplit_once('/'))
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or_else(|| panic!("no document for {id}: {doc}"));
        numbers.push(n);
    }
    let expected: Vec<i64> = (1..=SALES as i64).collect();
    assert_eq!(
        numbers, expected,
        "one document per sale, in lane order, no gap"
    );
    lane.stop().await;
}
