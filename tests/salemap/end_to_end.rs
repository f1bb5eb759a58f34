//! laned and salemap together: a lane rings sales while its back-end is
//! stopped and restarted, and every sale is posted exactly once, in lane
//! order, with gap-free document numbers.

use crate::common;

use std::time::Duration;

use common::Lane;
use common::salemap::Salemap;
use laned::salemap::{Database, Lanes};
use serde_json::Value;
use uuid::Uuid;

const TOKEN: &str = "e2e-lane-token";
const SALES: usize = 1000;

async fn posted(lane: &Lane) -> u64 {
    lane.status().await["counts"]["posted"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sales_through_backend_restarts_post_once_in_lane_order_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    through_restarts(dir.path(), db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sales_through_backend_restarts_post_once_in_lane_order_on_postgres() {
    let Some(pg) = common::pg::database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Postgres {
        url: pg.url.clone(),
        lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
    };
    through_restarts(dir.path(), db).await;
}

/// A lane rings 1,000 sales while its back-end (on `db`) is stopped and
/// restarted three times; every sale is posted once, in lane order, with
/// document numbers 1..=1000.
async fn through_restarts(dir: &std::path::Path, db: Database) {
    let mut sm = Salemap::start_on(db, Lanes::single("L03", TOKEN)).await;
    let mut cfg = common::config_with_backend(&dir.join("lane"), &sm.url, TOKEN);
    cfg.drain.batch_size = 50;
    cfg.drain.backoff_base = Duration::from_millis(20);
    cfg.drain.backoff_cap = Duration::from_millis(100);
    // An idle lane notices the outage quickly too.
    cfg.drain.heartbeat_interval = Duration::from_millis(100);
    let lane = Lane::start_with(cfg).await;

    // The till: four registers ringing 250 sales each, all the while.
    let ringers: Vec<_> = (0..4)
        .map(|_| {
            let (http, base) = (lane.http.clone(), lane.base.clone());
            tokio::spawn(async move {
                for _ in 0..SALES / 4 {
                    let id = Uuid::new_v4();
                    let r = http
                        .put(format!("{base}/v1/sales/{id}"))
                        .json(&common::sale())
                        .send()
                        .await
                        .expect("PUT");
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();

    for threshold in [100, 350, 600] {
        lane.until("enough sales posted", || async {
            posted(&lane).await >= threshold
        })
        .await;
        let (db, lanes, addr) = sm.stop().await;
        lane.until("the lane sees the back-end down", || async {
            lane.status().await["backend"]["consecutive_failures"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        })
        .await;
        sm = Salemap::start_at(db, lanes, addr).await;
    }
    for r in ringers {
        r.await.unwrap();
    }
    lane.until("every sale posted", || async {
        posted(&lane).await == SALES as u64
    })
    .await;

    // Every sale has one document; in lane order the numbers are 1..=n.
    let sales = common::all_sales(&lane.http, &lane.base).await;
    assert_eq!(sales.len(), SALES);
    let mut numbers = vec![];
    for s in &sales {
        let id = s["transaction_id"].as_str().unwrap();
        let doc: Value = lane
            .http
            .get(format!("{}/v1/sales/{id}", sm.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            doc["doc_no"], s["doc_no"],
            "the lane keeps the back-end's number"
        );
        let n: i64 = doc["doc_no"]
            .as_str()
            .and_then(|d| d.rsplit_once('/'))
            .and_then(|(_, n)| n.parse().ok())
            .expect("document number");
        numbers.push(n);
    }
    let expected: Vec<i64> = (1..=SALES as i64).collect();
    assert_eq!(numbers, expected, "documents in lane order, without gaps");
    lane.stop().await;
    sm.stop().await;
}

/// The length of a stored sale's envelope, read from the lane's database.
fn envelope_len(dir: &std::path::Path, id: &str) -> usize {
    let conn = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).unwrap();
    let len: i64 = conn
        .query_row(
            "SELECT length(body) FROM sales WHERE transaction_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    usize::try_from(len).unwrap()
}

/// The contract's largest envelope, to the byte: a sale whose envelope is
/// exactly that size is taken, delivered and posted; one byte more is
/// refused at intake (413, nothing stored, no number taken), instead of
/// being stored and then stuck forever at the back-end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_sale_is_posted_and_one_byte_more_is_refused_at_intake() {
    let max = laned::contract::MAX_ENVELOPE_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start(&dir.path().join("salemap.db"), Lanes::single("L03", TOKEN)).await;
    let lane_dir = dir.path().join("lane");
    let cfg = common::config_with_backend(&lane_dir, &sm.url, TOKEN);
    let lane = Lane::start_with(cfg).await;
    // Calibrate: 930 lines of 256 four-byte characters come within 8 KiB
    // of the limit; the padding makes up the rest.
    let probe = Uuid::new_v4().to_string();
    let (code, body) = lane.put(&probe, &common::big_sale(930, 0)).await;
    assert_eq!(code, 201, "{body}");
    let base = envelope_len(&lane_dir, &probe);
    assert!(base < max && max - base < 8000, "calibration: {base}");
    // The next document's envelope carries the series' grand total after
    // it: the probe's total twice, which may be written with more digits.
    let total = 100 * 930_i64;
    let grown = (2 * total).to_string().len() - total.to_string().len();
    let pad = max - base - grown;

    let over = Uuid::new_v4().to_string();
    let (code, body) = lane.put(&over, &common::big_sale(930, pad + 1)).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "an envelope of {} bytes was taken: {body}",
        max + 1
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&max.to_string())),
        "{body}"
    );
    assert_eq!(lane.get(&format!("/v1/sales/{over}")).await.0, 404);

    let exact = Uuid::new_v4().to_string();
    let (code, body) = lane.put(&exact, &common::big_sale(930, pad)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["receipt_no"], 2, "the refused sale took a number");
    assert_eq!(envelope_len(&lane_dir, &exact), max);
    lane.until("both posted", || async { posted(&lane).await == 2 })
        .await;
    assert_eq!(lane.sale_state(&exact).await, "posted");
    lane.stop().await;
    sm.stop().await;
}
