//! Invariant 3: receipt numbers are gap-free and unique per series.

use crate::common;

use common::{Lane, receipt_numbers, sale_with};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sales_get_exactly_receipts_1_to_200() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let mut tasks = vec![];
    for i in 0..200 {
        let (http, base) = (lane.http.clone(), lane.base.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .put(format!("{base}/v1/sales/{}", Uuid::new_v4()))
                .json(&sale_with(&format!("SKU{i}"), 1 + i % 5, 100 + i))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<serde_json::Value>().await.unwrap()["receipt_no"]
                .as_i64()
                .unwrap()
        }));
    }
    let mut answered = vec![];
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=200).collect::<Vec<_>>(), "answers");
    let stored = common::all_sales(&lane.http, &lane.base).await;
    assert_eq!(
        receipt_numbers(&stored),
        (1..=200).collect::<Vec<_>>(),
        "stored"
    );
    // Lane order and receipt order agree within the series.
    let by_seq: Vec<i64> = stored
        .iter()
        .map(|s| s["receipt_no"].as_i64().unwrap())
        .collect();
    assert_eq!(by_seq, (1..=200).collect::<Vec<_>>());
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbering_continues_across_a_restart_and_a_series_change() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    for _ in 0..3 {
        lane.put(&Uuid::new_v4().to_string(), &common::sale()).await;
    }
    lane.stop().await;

    let lane = Lane::start(dir.path()).await;
    let (s, b) = lane.put(&Uuid::new_v4().to_string(), &common::sale()).await;
    assert_eq!((s, b["receipt"].as_str()), (201, Some("L03-000004")));
    lane.stop().await;

    // A new series starts at 1; the old one keeps its numbers.
    let mut cfg = common::config(dir.path());
    cfg.series = "L03B".into();
    let lane = Lane::start_with(cfg).await;
    let (_, b) = lane.put(&Uuid::new_v4().to_string(), &common::sale()).await;
    assert_eq!(b["receipt"], "L03B-000001");
    let st = lane.status().await;
    assert_eq!(
        st["last_receipt_no"],
        serde_json::json!({"L03": 4, "L03B": 1})
    );
    lane.stop().await;
}
