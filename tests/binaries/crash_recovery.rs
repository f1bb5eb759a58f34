//! Invariant 1: no acknowledged sale is lost, even to `kill -9` of the real
//! binary while a client streams sales; and the series stays exactly 1..n.

use crate::common;

use common::{RealLane, client, receipt_numbers, sale_with};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Sales acknowledged before the kill.
const KILL_AFTER_ACKS: usize = 300;
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_streaming_loses_no_acknowledged_sale_and_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("laned starts");
    let http = client();
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<(String, i64)>();
    let mut streamers = vec![];
    for c in 0..CLIENTS {
        let (http, base, acks) = (http.clone(), lane.base.clone(), ack_tx.clone());
        streamers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = Uuid::new_v4().to_string();
                let r = http
                    .put(format!("{base}/v1/sales/{id}"))
                    .json(&sale_with(&format!("C{c}-{i}"), 1, 100 + i))
                    .send()
                    .await;
                // Once the daemon is dead every request fails: stop.
                let Ok(r) = r else { return };
                if !r.status().is_success() {
                    return;
                }
                let Ok(b) = r.json::<Value>().await else {
                    return;
                };
                if acks
                    .send((id, b["receipt_no"].as_i64().unwrap_or(-1)))
                    .is_err()
                {
                    return;
                }
            }
        }));
    }
    drop(ack_tx);
    let mut acked = vec![];
    while let Some(a) = ack_rx.recv().await {
        acked.push(a);
        if acked.len() == KILL_AFTER_ACKS {
            // Requests are in flight on every client right now.
            lane.kill9();
        }
    }
    for s in streamers {
        s.await.unwrap();
    }
    assert!(acked.len() >= KILL_AFTER_ACKS);

    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("laned restarts after kill -9");
    for (id, receipt_no) in &acked {
        let r = http
            .get(format!("{}/v1/sales/{id}", lane.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged sale {id} was lost");
        let b: Value = r.json().await.unwrap();
        assert_eq!(
            b["receipt_no"].as_i64(),
            Some(*receipt_no),
            "sale {id} changed its receipt"
        );
    }
    let all = common::all_sales(&http, &lane.base).await;
    let n = all.len() as i64;
    assert!(n >= acked.len() as i64);
    assert_eq!(
        receipt_numbers(&all),
        (1..=n).collect::<Vec<_>>(),
        "the series has a gap or a duplicate"
    );
    // Numbering continues after the survivors.
    let r = http
        .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
        .json(&common::sale())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["receipt_no"].as_i64(),
        Some(n + 1)
    );
    // The figures the status report keeps through the kills equal a full
    // recount of the sales.
    let status = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(status["counts"]["pending"].as_i64(), Some(n + 1));
    let db = laned::lane::store::ReadOnly::open(dir.path()).unwrap();
    assert_eq!(db.tally_mismatches().unwrap(), vec![]);
}
