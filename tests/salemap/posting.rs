//! salemap, the reference back-end, tried from outside: replays, payload
//! mismatches, receipt number conflicts, voids, batches, concurrent
//! duplicates and transactions rolled back on purpose.

use crate::common;

use std::collections::BTreeMap;

use common::pg::PgDb;
use common::salemap::{Salemap, envelope, envelope_of, envelope_of_size};
use laned::salemap::{Database, Lanes};
use serde_json::{Value, json};
use uuid::Uuid;

pub(super) const TOKEN: &str = "lane-L03-token";

/// The database a scenario runs on, kept alive for the scenario.
pub(super) struct Backing {
    pub(super) db: Database,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDb>,
}

pub(super) fn sqlite() -> Backing {
    let dir = tempfile::tempdir().unwrap();
    Backing {
        db: Database::Sqlite(dir.path().join("salemap.db")),
        _dir: Some(dir),
        _pg: None,
    }
}

pub(super) async fn postgres() -> Option<Backing> {
    let pg = common::pg::database().await?;
    Some(Backing {
        db: Database::Postgres {
            url: pg.url.clone(),
            lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
        },
        _dir: None,
        _pg: Some(pg),
    })
}

/// Runs a scenario on SQLite and on PostgreSQL.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(b) = super::postgres().await {
                    super::$name(b).await;
                }
            }
        }
    )*};
}
pub(super) use both;

both!(
    a_repeat_is_answered_with_the_original_document_and_other_bytes_are_refused,
    a_void_cancels_its_original_which_then_blocks_no_later_post,
    tokens_bind_a_lane_to_its_own_sales,
    fifty_parallel_identical_puts_make_one_document_with_identical_answers,
    a_winner_that_rolls_back_leaves_the_gate_to_a_waiting_duplicate,
    document_numbers_stay_gap_free_per_series_under_concurrency_and_aborts,
    a_batch_is_one_transaction_with_an_answer_per_sale,
    a_series_belongs_to_the_lane_that_first_posted_in_it,
    an_upgraded_database_gives_each_series_to_the_lane_of_its_first_document,
    envelopes_up_to_the_largest_size_are_posted_on_both_routes,
    every_envelope_field_is_checked_and_unknown_fields_are_allowed,
    a_lane_day_is_listed_document_by_document_a_page_at_a_time,
);

fn lanes() -> Lanes {
    Lanes::single("L03", TOKEN).with_lane("L04", "lane-L04-token")
}

struct Resp {
    status: u16,
    replayed: bool,
    body: Value,
}

async fn put(http: &reqwest::Client, base: &str, id: &str, env: &str, token: &str) -> Resp {
    let r = http
        .put(format!("{base}/v1/sales/{id}"))
        .bearer_auth(token)
        .header("Idempotency-Key", id)
        .header("Content-Type", "application/json")
        .body(env.to_owned())
        .send()
        .await
        .expect("PUT");
    Resp {
        status: r.status().as_u16(),
        replayed: r.headers().get("idempotency-replayed").is_some(),
        body: r.json().await.expect("JSON"),
    }
}

/// Posts `envs` as one batch of `lane`, with lane L03's token.
pub(super) async fn batch(
    http: &reqwest::Client,
    base: &str,
    lane: &str,
    envs: &[String],
) -> (u16, Value) {
    let body = format!("{{\"lane_id\":\"{lane}\",\"sales\":[{}]}}", envs.join(","));
    let r = http
        .post(format!("{base}/v1/sales:batch"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("batch");
    (r.status().as_u16(), r.json().await.expect("JSON"))
}

fn id() -> String {
    Uuid::new_v4().to_string()
}

/// `PUT`s a new sale of `lane` in `series` with `receipt_no`, with that
/// lane's token; returns its id and the answer.
async fn post_new(
    http: &reqwest::Client,
    base: &str,
    (lane, series, receipt_no): (&str, &str, i64),
) -> (String, Resp) {
    let token = if lane == "L03" {
        TOKEN
    } else {
        "lane-L04-token"
    };
    let id = id();
    let r = put(
        http,
        base,
        &id,
        &envelope(&id, lane, series, receipt_no),
        token,
    )
    .await;
    (id, r)
}

/// The number part of a document number `SERIES/NNNNNNNN`.
fn doc_number(v: &Value) -> i64 {
    v["doc_no"]
        .as_str()
        .and_then(|d| d.rsplit_once('/'))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("no document number in {v}"))
}

async fn a_repeat_is_answered_with_the_original_document_and_other_bytes_are_refused(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let a = id();
    let env = envelope(&a, "L03", "L03", 1);
    let first = put(&http, &sm.url, &a, &env, TOKEN).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!first.replayed);
    assert_eq!(first.body["doc_no"], "L03/00000001");
    let again = put(&http, &sm.url, &a, &env, TOKEN).await;
    assert_eq!((again.status, again.replayed), (200, true));
    assert_eq!(again.body, first.body);
    // Same id, other bytes.
    let other = envelope(&a, "L03", "L03", 2);
    let r = put(&http, &sm.url, &a, &other, TOKEN).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("payload_mismatch"))
    );
    // Same receipt number, another id: the lane was restored from a copy.
    let b = id();
    let r = put(&http, &sm.url, &b, &envelope(&b, "L03", "L03", 1), TOKEN).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["code"], "receipt_no_conflict");
    assert_eq!(r.body["details"]["holder"], a.as_str());
    // Nothing of the refused posts took a number.
    let c = id();
    let r = put(&http, &sm.url, &c, &envelope(&c, "L03", "L03", 2), TOKEN).await;
    assert_eq!(r.body["doc_no"], "L03/00000002");
    // The heartbeat knows the lane's highest receipt number per series.
    let hb: Value = http
        .get(format!("{}/v1/heartbeat", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hb["last_receipt_no"], json!({"L03": 2}));
    sm.stop().await;
}

async fn a_void_cancels_its_original_which_then_blocks_no_later_post(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let sale = id();
    assert_eq!(
        put(
            &http,
            &sm.url,
            &sale,
            &envelope(&sale, "L03", "L03", 1),
            TOKEN
        )
        .await
        .status,
        201
    );
    let void = id();
    let void_doc = json!({
        "kind": "void", "references": sale, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:05:00+03:00", "currency": "KES", "cashier": "E042",
        "lines": [], "payments": [], "total": 0, "change": 0,
        "till": {"invoice_no": "000124", "register": "R3"}, "extra": {}
    });
    let r = put(
        &http,
        &sm.url,
        &void,
        &envelope_of(&void, "L03", "L03", 2, void_doc),
        TOKEN,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got: Value = http
        .get(format!("{}/v1/sales/{sale}", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["voided_by"], void.as_str());
    // Receipt 1 is voided: a later legitimate post under that number goes through.
    let later = id();
    let r = put(
        &http,
        &sm.url,
        &later,
        &envelope(&later, "L03", "L03", 1),
        TOKEN,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Day totals: the voided sale counts apart.
    let day: Value = http
        .get(format!("{}/v1/lanes/L03/days/2026-11-22", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(day["count"], 3);
    assert_eq!(day["sales"]["count"], 1);
    assert_eq!(day["voided"]["count"], 1);
    assert_eq!(day["voids"]["count"], 1);
    assert_eq!(day["net"]["KES"], 25_000);
    sm.stop().await;
}

async fn tokens_bind_a_lane_to_its_own_sales(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let a = id();
    let env = envelope(&a, "L03", "L03", 1);
    assert_eq!(put(&http, &sm.url, &a, &env, "wrong").await.status, 401);
    let r = put(&http, &sm.url, &a, &env, "lane-L04-token").await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (403, Some("wrong_lane"))
    );
    assert_eq!(put(&http, &sm.url, &a, &env, TOKEN).await.status, 201);
    let other_lane = http
        .get(format!("{}/v1/sales/{a}", sm.url))
        .bearer_auth("lane-L04-token")
        .send()
        .await
        .unwrap();
    assert_eq!(other_lane.status(), 404);
    let r = http
        .get(format!("{}/v1/lanes/L03/days/2026-11-22", sm.url))
        .bearer_auth("lane-L04-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A path id that is not the envelope's.
    let b = id();
    let r = put(&http, &sm.url, &b, &env, TOKEN).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (400, Some("id_mismatch"))
    );
    // A sale that breaks the rules is refused with its fields.
    let mut bad = common::sale();
    bad["total"] = json!(1);
    let r = put(
        &http,
        &sm.url,
        &b,
        &envelope_of(&b, "L03", "L03", 2, bad),
        TOKEN,
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("validation_failed"))
    );
    sm.stop().await;
}

async fn fifty_parallel_identical_puts_make_one_document_with_identical_answers(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let a = id();
    let env = envelope(&a, "L03", "L03", 1);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (http, url, a, env) = (http.clone(), sm.url.clone(), a.clone(), env.clone());
            tokio::spawn(async move { put(&http, &url, &a, &env, TOKEN).await })
        })
        .collect();
    let mut created = 0;
    let mut bodies = vec![];
    for t in tasks {
        let r = t.await.unwrap();
        assert!(
            r.status == 201 || (r.status == 200 && r.replayed),
            "{}",
            r.body
        );
        created += usize::from(r.status == 201);
        bodies.push(r.body);
    }
    assert_eq!(created, 1);
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    sm.stop().await;
}

async fn a_winner_that_rolls_back_leaves_the_gate_to_a_waiting_duplicate(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    sm.store.inject_aborts(Some(Box::new(|n| n == 1)));
    let http = common::client();
    let a = id();
    let env = envelope(&a, "L03", "L03", 1);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (http, url, a, env) = (http.clone(), sm.url.clone(), a.clone(), env.clone());
            tokio::spawn(async move { put(&http, &url, &a, &env, TOKEN).await })
        })
        .collect();
    let mut by_status: BTreeMap<u16, Vec<Value>> = BTreeMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        by_status.entry(r.status).or_default().push(r.body);
    }
    assert_eq!(by_status[&503].len(), 1, "{by_status:?}");
    assert_eq!(by_status[&201].len(), 1, "{by_status:?}");
    assert_eq!(by_status[&200].len(), 8, "{by_status:?}");
    // The rolled-back winner took no number: the document is the first.
    assert_eq!(by_status[&201][0]["doc_no"], "L03/00000001");
    assert!(by_status[&200].iter().all(|b| *b == by_status[&201][0]));
    sm.stop().await;
}

async fn document_numbers_stay_gap_free_per_series_under_concurrency_and_aborts(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    // Every third transaction rolls back after taking its numbers.
    sm.store.inject_aborts(Some(Box::new(|n| n % 3 == 0)));
    let http = common::client();
    let tasks: Vec<_> = (0..16)
        .map(|client| {
            let (http, url) = (http.clone(), sm.url.clone());
            tokio::spawn(async move {
                let mut docs = vec![];
                for i in 0..15 {
                    let series = if i % 2 == 0 { "A" } else { "B" };
                    let receipt = i64::from(client * 100 + i + 1);
                    let a = id();
                    let env = envelope(&a, "L03", series, receipt);
                    // Like the lane: the same request until it gets a 2xx.
                    let mut aborted = 0;
                    loop {
                        let r = put(&http, &url, &a, &env, TOKEN).await;
                        match r.status {
                            201 | 200 => {
                                docs.push((series, r.body));
                                break;
                            }
                            503 => aborted += 1,
                            s => panic!("{s}: {}", r.body),
                        }
                        assert!(aborted < 100, "never posted");
                    }
                }
                docs
            })
        })
        .collect();
    let mut numbers: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for t in tasks {
        for (series, body) in t.await.unwrap() {
            numbers.entry(series).or_default().push(doc_number(&body));
        }
    }
    for (series, mut n) in numbers {
        n.sort_unstable();
        let expected: Vec<i64> = (1..=n.len() as i64).collect();
        assert_eq!(n, expected, "series {series}");
    }
    sm.stop().await;
}

async fn a_batch_is_one_transaction_with_an_answer_per_sale(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let first = id();
    assert_eq!(
        put(
            &http,
            &sm.url,
            &first,
            &envelope(&first, "L03", "L03", 1),
            TOKEN
        )
        .await
        .status,
        201
    );
    let ids: Vec<String> = (0..4).map(|_| id()).collect();
    let mut bad = common::sale();
    bad["total"] = json!(1);
    let envs = vec![
        envelope(&first, "L03", "L03", 1),          // replay
        envelope(&ids[0], "L03", "L03", 2),         // new
        envelope(&ids[1], "L03", "L03", 1),         // receipt conflict
        envelope_of(&ids[2], "L03", "L03", 3, bad), // invalid sale
        envelope(&ids[3], "L03", "L03", 4),         // new
    ];
    // Rolled back as a whole: nothing of it is kept.
    sm.store.inject_aborts(Some(Box::new(|n| n == 1)));
    let (status, _) = batch(&http, &sm.url, "L03", &envs).await;
    assert_eq!(status, 503);
    sm.store.inject_aborts(None);
    let (status, body) = batch(&http, &sm.url, "L03", &envs).await;
    assert_eq!(status, 200, "{body}");
    let r = body["results"].as_array().unwrap();
    let statuses: Vec<u64> = r.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 201, 422, 422, 201]);
    assert_eq!(r[2]["code"], "receipt_no_conflict");
    assert_eq!(r[3]["code"], "validation_failed");
    // The aborted attempt left no gap: 2 and 3 follow the first document.
    assert_eq!(r[1]["doc_no"], "L03/00000002");
    assert_eq!(r[4]["doc_no"], "L03/00000003");
    // A batch naming another lane is refused whole.
    let (status, body) = batch(&http, &sm.url, "L04", &[]).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("wrong_lane")));
    sm.stop().await;
}

/// Lane L04's token may not post into lane L03's receipt series (which
/// would take L03's document numbers): the whole request is refused with
/// `403 series_of_another_lane`, nothing is posted, and L03's numbering
/// goes on without a gap.
async fn a_series_belongs_to_the_lane_that_first_posted_in_it(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let (_, r) = post_new(&http, &sm.url, ("L03", "L03", 1)).await;
    assert_eq!((r.status, doc_number(&r.body)), (201, 1), "{}", r.body);

    let (intruder, r) = post_new(&http, &sm.url, ("L04", "L03", 1)).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (403, Some("series_of_another_lane")),
        "{}",
        r.body
    );
    let msg = r.body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("L03") && msg.contains("L04"), "{msg}");
    // In a batch too, with a sale of its own series before it.
    let own = id();
    let body = format!(
        "{{\"lane_id\":\"L04\",\"sales\":[{},{}]}}",
        envelope(&own, "L04", "L04", 1),
        envelope(&intruder, "L04", "L03", 1)
    );
    let r = http
        .post(format!("{}/v1/sales:batch", sm.url))
        .bearer_auth("lane-L04-token")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "series_of_another_lane", "{v}");
    for refused in [&intruder, &own] {
        let r = http
            .get(format!("{}/v1/sales/{refused}", sm.url))
            .bearer_auth("lane-L04-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{refused} was posted");
    }
    // L03's own next sale takes document 2: nothing was taken from it.
    let (_, r) = post_new(&http, &sm.url, ("L03", "L03", 2)).await;
    assert_eq!((r.status, doc_number(&r.body)), (201, 2), "{}", r.body);
    // L04 still posts in its own series.
    let r = put(
        &http,
        &sm.url,
        &own,
        &envelope(&own, "L04", "L04", 1),
        "lane-L04-token",
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    sm.stop().await;
}

/// Runs `sql` on the scenario's database, as a tool would.
async fn execute(db: &Database, sql: &str) {
    match db {
        Database::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(sql)
            .unwrap(),
        Database::Postgres { url, .. } => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        }
    }
}

/// A database from before series had owners: on upgrade, each series
/// goes to the lane of its first document, and is closed to the others.
async fn an_upgraded_database_gives_each_series_to_the_lane_of_its_first_document(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let (_, r) = post_new(&http, &sm.url, ("L03", "L03", 1)).await;
    assert_eq!(r.status, 201);
    // Receipt 3 without 2: a hole the upgrade must find.
    let (_, r) = post_new(&http, &sm.url, ("L03", "L03", 3)).await;
    assert_eq!(r.status, 201);
    let (db, lanes, _) = sm.stop().await;
    // Back to schema 1.
    let marks = "DROP TABLE series_marks; DROP TABLE holes; DROP TABLE lanes_seen;
                 DROP TABLE conflicts; DROP INDEX posted_lane_day_receipts;
                 CREATE INDEX posted_lane_day ON posted (tenant, lane_id, business_date);";
    match &db {
        Database::Sqlite(_) => {
            execute(&db, marks).await;
            execute(
                &db,
                "DROP TABLE links; DROP TABLE chain_heads; DROP TABLE certificates;
                 DROP INDEX doc_counters_lane; DROP TABLE closings;
                 ALTER TABLE doc_counters DROP COLUMN lane_id; PRAGMA user_version = 1;",
            )
            .await
        }
        Database::Postgres { .. } => {
            execute(&db, marks).await;
            execute(
                &db,
                "DROP TABLE links; DROP FUNCTION links_no_delete(); DROP TABLE chain_heads;
                 DROP TABLE certificates; DROP FUNCTION certificates_immutable();
                 DROP INDEX doc_counters_lane;
                 DROP TABLE closings; DROP FUNCTION closings_immutable();
                 ALTER TABLE doc_counters DROP COLUMN lane_id;
                 DELETE FROM salemap_schema WHERE version > 1;",
            )
            .await
        }
    }
    let sm = Salemap::start_on(db, lanes).await;
    let (_, r) = post_new(&http, &sm.url, ("L04", "L03", 1)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // What head office sees was found in what the map held: receipt 2
    // missing, since the first posting after it.
    let seen = |body: Value| {
        let s = &body["series"][0];
        (
            s["watermark"].as_i64(),
            s["highest_receipt_no"].as_i64(),
            s["missing"].as_i64(),
            body["holes"][0]["first_no"].as_i64(),
        )
    };
    let lane = |url: String| async move {
        let r = common::client()
            .get(format!("{url}/v1/lanes/L03"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    let before = lane(sm.url.clone()).await;
    assert_eq!(
        seen(before.clone()),
        (Some(1), Some(3), Some(1), Some(2)),
        "{before}"
    );
    assert!(before["last_posted"].is_string(), "{before}");
    let (_, r) = post_new(&http, &sm.url, ("L03", "L03", 2)).await;
    assert_eq!((r.status, doc_number(&r.body)), (201, 3), "{}", r.body);
    let after = lane(sm.url.clone()).await;
    assert_eq!(
        seen(after.clone()),
        (Some(3), Some(3), Some(0), None),
        "{after}"
    );
    sm.stop().await;
}

/// The contract's largest envelope is posted by `PUT` and inside a batch;
/// one byte more is `413 payload_too_large` (the whole `PUT`, or that item
/// of a batch).
async fn envelopes_up_to_the_largest_size_are_posted_on_both_routes(b: Backing) {
    let max = laned::contract::MAX_ENVELOPE_BYTES;
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let a = id();
    let r = put(
        &http,
        &sm.url,
        &a,
        &envelope_of_size(&a, "L03", "L03", 1, max),
        TOKEN,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let over = id();
    let r = put(
        &http,
        &sm.url,
        &over,
        &envelope_of_size(&over, "L03", "L03", 2, max + 1),
        TOKEN,
    )
    .await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{}",
        r.body
    );
    let b2 = id();
    let envs = [
        envelope_of_size(&b2, "L03", "L03", 2, max),
        envelope_of_size(&over, "L03", "L03", 3, max + 1),
    ];
    let (status, v) = batch(&http, &sm.url, "L03", &envs).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["status"], 201, "{v}");
    assert_eq!(v["results"][1]["status"], 413, "{v}");
    assert_eq!(v["results"][1]["code"], "payload_too_large", "{v}");
    sm.stop().await;
}

/// salemap keeps its data like laned: the data directory `0700` (created
/// so, or tightened), the database (created so, or tightened) and its WAL
/// `0600`.
#[cfg(unix)]
#[test]
fn salemap_keeps_its_data_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let top = tempfile::tempdir().unwrap();
    let fresh = top.path().join("fresh");
    let loose = top.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As an older salemap left it: an (empty) database others could read.
    let db = loose.join("salemap.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    for dir in [fresh, loose] {
        let mut cmd = std::process::Command::new(common::salemap_bin());
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-any-lane",
            "--data-dir",
        ])
        .arg(&dir);
        let server = common::RealLane::spawn_command(cmd).expect("salemap starts");
        let a = id();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let r = rt.block_on(put(
            &common::client(),
            &server.base,
            &a,
            &envelope(&a, "L03", "L03", 1),
            "any",
        ));
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for f in ["salemap.db", "salemap.db-wal"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f} in {}", dir.display());
        }
    }
}

/// An envelope field the contract defines that is malformed is refused
/// with its field named, and nothing is posted; fields the contract does
/// not define are accepted (a newer lane may send more); a transaction id
/// in a path must be a UUID.
async fn every_envelope_field_is_checked_and_unknown_fields_are_allowed(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let set = |env: &str, field: &str, v: Value| {
        let mut e: Value = serde_json::from_str(env).unwrap();
        e[field] = v;
        e.to_string()
    };
    let a = id();
    let good = envelope(&a, "L03", "L03", 1);
    for (field, bad) in [
        ("recorded_at", json!("yesterday")),
        ("recorded_at", json!("2026-11-22")),
        ("lane_seq", json!(0)),
        ("receipt_no", json!(-1)),
        ("series", json!("L 03")),
        ("series", json!("")),
    ] {
        let r = put(&http, &sm.url, &a, &set(&good, field, bad.clone()), TOKEN).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (422, Some("validation_failed")),
            "{field} = {bad}: {}",
            r.body
        );
        let fields = r.body["details"]["fields"].to_string();
        assert!(fields.contains(field), "{field} = {bad}: {}", r.body);
    }
    // Not a version 4 UUID, in an envelope (of a batch) and in a path.
    let v1 = "c232ab00-9414-11ec-b3c8-9f6bdeced846";
    let (status, v) = batch(
        &http,
        &sm.url,
        "L03",
        &[set(&good, "transaction_id", json!(v1))],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["status"], 422, "{v}");
    assert!(v["results"][0]["message"].as_str().is_some(), "{v}");
    for path in ["xyz", "c232ab00-9414-11ec-b3c8-9f6bdeced846"] {
        let r = http
            .get(format!("{}/v1/sales/{path}", sm.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "GET {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalid_transaction_id", "{v}");
        let r = put(&http, &sm.url, path, &good, TOKEN).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (400, Some("invalid_transaction_id")),
            "PUT {path}: {}",
            r.body
        );
    }
    // Nothing of that was posted; the good envelope with a field this
    // salemap does not know is.
    let r = put(
        &http,
        &sm.url,
        &a,
        &set(&good, "from_the_future", json!({"x": 1})),
        TOKEN,
    )
    .await;
    assert_eq!((r.status, doc_number(&r.body)), (201, 1), "{}", r.body);
    sm.stop().await;
}

/// `GET /v1/lanes/{lane}/days/{date}/documents`: every document of the
/// lane's day, in order of series, receipt number and id, a page at a
/// time, with the hash of the bytes held; another day and another lane
/// stay out; a bad page is refused and changes nothing.
async fn a_lane_day_is_listed_document_by_document_a_page_at_a_time(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), lanes()).await;
    let http = common::client();
    let mut held = Vec::new();
    for (series, no) in [("L03B", 1), ("L03", 2), ("L03", 1), ("L03", 3), ("L03B", 2)] {
        let (id, r) = post_new(&http, &sm.url, ("L03", series, no)).await;
        assert_eq!(r.status, 201);
        held.push((series.to_owned(), no, id));
    }
    let (_, r) = post_new(&http, &sm.url, ("L04", "L04", 1)).await;
    assert_eq!(r.status, 201);
    held.sort();
    let page = |after: Option<String>, limit: &str| {
        let http = http.clone();
        let url = format!(
            "{}/v1/lanes/L03/days/2026-11-22/documents?limit={limit}{}",
            sm.url,
            after.map(|a| format!("&after={a}")).unwrap_or_default()
        );
        async move {
            let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (status, body) = page(after.clone(), "2").await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        for d in body["documents"].as_array().unwrap() {
            assert_eq!(d["hash"].as_str().map(str::len), Some(64), "{d}");
            seen.push((
                d["series"].as_str().unwrap().to_owned(),
                d["receipt_no"].as_i64().unwrap(),
                d["transaction_id"].as_str().unwrap().to_owned(),
            ));
        }
        match body["next_after"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, held);
    assert_eq!(pages, 3);
    let (status, body) = page(None, "1000").await;
    assert_eq!((status, &body["next_after"]), (200, &Value::Null), "{body}");
    assert_eq!(body["documents"].as_array().unwrap().len(), 5);
    // The hash is of the exact bytes held (the envelope as sent).
    let (series, no, id0) = &held[0];
    assert_eq!(
        body["documents"][0]["hash"].as_str().unwrap(),
        laned::contract::journal::hash(envelope(id0, "L03", series, *no).as_bytes())
    );
    for (after, limit, code) in [
        (None, "0", "invalid_limit"),
        (None, "1001", "invalid_limit"),
        (Some("not-a-uuid".to_owned()), "2", "invalid_transaction_id"),
        (Some(id()), "2", "invalid_cursor"),
    ] {
        let (status, body) = page(after, limit).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{body}");
    }
    let r = http
        .get(format!("{}/v1/lanes/L04/days/2026-11-22/documents", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    sm.stop().await;
}
