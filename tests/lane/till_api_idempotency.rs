//! Invariant 2 on the lane side: a repeat is harmless, a changed sale under
//! a used id is refused and changes nothing.

use crate::common;

use common::{Lane, sale, sale_with};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_put_returns_the_identical_body_with_200() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let id = Uuid::new_v4().to_string();
    let (s1, b1) = lane.put(&id, &sale()).await;
    let (s2, b2) = lane.put(&id, &sale()).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(b1, b2);
    assert_eq!(b1["receipt"], "L03-000001");
    assert_eq!(b1["transaction_id"], id);
    // Key order and spacing do not make it a different sale.
    let pretty = serde_json::to_string_pretty(&sale()).unwrap();
    let r = lane
        .http
        .put(format!("{}/v1/sales/{id}", lane.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(pretty)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_with_a_different_sale_is_409_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let id = Uuid::new_v4().to_string();
    let original = sale();
    assert_eq!(lane.put(&id, &original).await.0, 201);
    let (_, before) = lane.get(&format!("/v1/sales/{id}")).await;

    let mut changed = original.clone();
    changed["cashier"] = json!("E999");
    let (status, body) = lane.put(&id, &changed).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "transaction_id_reused");
    assert_eq!(body["details"]["receipt"], "L03-000001");

    let (_, after) = lane.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(before, after, "the stored sale changed");
    assert_eq!(after["sale"]["cashier"], "E042");
    let status = lane.status().await;
    assert_eq!(status["counts"]["pending"], 1);
    assert_eq!(
        status["last_receipt_no"]["L03"], 1,
        "a refused sale took a number"
    );
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_puts_of_one_id_store_one_row_and_all_name_one_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let id = Uuid::new_v4().to_string();
    let body = sale();
    let mut tasks = vec![];
    for _ in 0..50 {
        let (http, url, body) = (
            lane.http.clone(),
            format!("{}/v1/sales/{id}", lane.base),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = http.put(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    let mut receipts = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, b) = t.await.unwrap();
        assert!(status == 201 || status == 200, "{status} {b}");
        created += usize::from(status == 201);
        receipts.insert(b["receipt"].as_str().unwrap().to_owned());
    }
    assert_eq!(created, 1, "exactly one PUT creates the sale");
    assert_eq!(
        receipts.len(),
        1,
        "answers name different receipts: {receipts:?}"
    );
    let all = common::all_sales(&lane.http, &lane.base).await;
    assert_eq!(all.len(), 1);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_idempotency_key_is_idempotent_and_refuses_a_changed_sale() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let post = |body: Value, key: &'static str| {
        let (http, url) = (lane.http.clone(), format!("{}/v1/sales", lane.base));
        async move {
            let r = http
                .post(url)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s1, b1) = post(sale(), "till-R3-000123").await;
    let (s2, b2) = post(sale(), "till-R3-000123").await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(b1, b2);
    assert!(common::laned_uuid_is_v4(
        b1["transaction_id"].as_str().unwrap()
    ));
    let mut changed = sale();
    changed["cashier"] = json!("E777");
    let (s3, b3) = post(changed, "till-R3-000123").await;
    assert_eq!(s3, 409, "{b3}");
    assert_eq!(b3["code"], "transaction_id_reused");
    assert_eq!(b3["details"]["transaction_id"], b1["transaction_id"]);
    // A different key is a different sale.
    let (s4, b4) = post(sale(), "till-R3-000124").await;
    assert_eq!(s4, 201);
    assert_eq!(b4["receipt_no"], 2);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_duplicate_rule_matches_invoice_register_time_and_basket_only() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let post = |body: Value| {
        let (http, url) = (lane.http.clone(), format!("{}/v1/sales", lane.base));
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s1, b1) = post(sale()).await;
    assert_eq!(s1, 201);
    // Same till invoice, register, time and basket: the same sale sent again
    // (a payment id regenerated by the till does not make it new).
    let mut resent = sale();
    resent["payments"][0]["payment_id"] = json!(Uuid::new_v4());
    let (s2, b2) = post(resent).await;
    assert_eq!(s2, 200, "{b2}");
    assert_eq!(b2["transaction_id"], b1["transaction_id"]);
    // The identical basket rung later is a different sale.
    let mut later = sale();
    later["occurred_at"] = json!("2026-11-22T14:09:00+03:00");
    assert_eq!(post(later).await.0, 201);
    // Another basket under the same invoice number is a different sale too.
    assert_eq!(post(sale_with("5000112637922", 1, 9_900)).await.0, 201);
    // Without the till's invoice number the rule does not apply at all.
    let mut anonymous = sale();
    anonymous["till"] = json!({});
    assert_eq!(post(anonymous.clone()).await.0, 201);
    assert_eq!(post(anonymous).await.0, 201);
    assert_eq!(lane.status().await["counts"]["pending"], 5);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_ids_are_v4_and_distinct_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let b: Value = lane
            .http
            .post(format!("{}/v1/transactions", lane.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = b["transaction_id"].as_str().unwrap().to_owned();
        assert!(common::laned_uuid_is_v4(&id), "{id}");
        assert!(seen.insert(id));
    }
    assert_eq!(lane.status().await["counts"]["pending"], 0);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_sale_shows_state_receipt_and_the_sale_as_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let id = Uuid::new_v4().to_string();
    lane.put(&id, &sale()).await;
    let (status, s) = lane.get(&format!("/v1/sales/{}", id.to_uppercase())).await;
    assert_eq!(status, 200);
    assert_eq!(s["state"], "pending");
    assert_eq!(s["receipt"], "L03-000001");
    assert_eq!(s["attempts"], 0);
    assert_eq!(s["doc_no"], Value::Null);
    assert_eq!(s["sale"]["lines"][0]["amount"], 25_000);
    assert_eq!(s["sale"]["total"], 25_000);
    let (status, e) = lane.get(&format!("/v1/sales/{}", Uuid::new_v4())).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_in_lane_order_and_filters_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    for i in 0..25 {
        lane.put(
            &Uuid::new_v4().to_string(),
            &sale_with(&format!("SKU{i}"), 1, 100),
        )
        .await;
    }
    let (_, p1) = lane.get("/v1/sales?limit=10").await;
    assert_eq!(p1["sales"].as_array().unwrap().len(), 10);
    assert_eq!(p1["next_after"], 10);
    let (_, p3) = lane.get("/v1/sales?limit=10&after=20").await;
    assert_eq!(p3["sales"].as_array().unwrap().len(), 5);
    assert_eq!(p3["next_after"], Value::Null);
    assert_eq!(p3["sales"][0]["seq"], 21);
    let (_, pend) = lane.get("/v1/sales?state=pending&limit=1000").await;
    assert_eq!(pend["sales"].as_array().unwrap().len(), 25);
    let (_, posted) = lane.get("/v1/sales?state=posted").await;
    assert_eq!(posted["sales"].as_array().unwrap().len(), 0);
    // A query laned cannot use is 400 (tests/bad_input.rs has every case).
    let (status, bad) = lane.get("/v1/sales?state=lost").await;
    assert_eq!((status, bad["code"].as_str()), (400, Some("invalid_query")));
    let (status, _) = lane.get("/v1/sales?limit=0").await;
    assert_eq!(status, 400);
    let (status, _) = lane.get("/v1/sales?colour=red").await;
    assert_eq!(status, 400);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_counts_amounts_and_oldest_pending() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    let s0 = lane.status().await;
    assert_eq!(s0["lane_id"], "L03");
    assert_eq!(s0["series"], "L03");
    assert_eq!(s0["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s0["oldest_pending"], Value::Null);
    assert!(s0["uptime_seconds"].is_u64());
    let original = Uuid::new_v4().to_string();
    lane.put(&original, &sale_with("A", 2, 12_500)).await;
    let mut eur = sale_with("B", 1, 999);
    eur["currency"] = json!("EUR");
    lane.put(&Uuid::new_v4().to_string(), &eur).await;
    let mut ret = sale_with("A", 1, 12_500);
    ret["kind"] = json!("return");
    ret["references"] = json!(original);
    lane.put(&Uuid::new_v4().to_string(), &ret).await;
    let s = lane.status().await;
    assert_eq!(
        s["counts"],
        json!({"pending": 3, "posted": 0, "stuck": 0, "resolved": 0})
    );
    assert_eq!(s["pending_amount"], json!({"KES": 12_500, "EUR": 999}));
    assert_eq!(s["last_receipt_no"], json!({"L03": 3}));
    assert!(s["oldest_pending"]["recorded_at"].is_string());
    assert!(s["oldest_pending"]["age_seconds"].as_i64().unwrap() >= 0);
    lane.stop().await;
}
