//! What only PostgreSQL does: a duplicate that waits too long on the
//! request posting the same id is answered `409 in_flight`, and a database
//! that cannot be reached is `503` with `Retry-After`, never an outcome.
//! (The shared scenarios run on both stores in `tests/salemap.rs`.)

use crate::common;

use std::time::Duration;

use common::salemap::{Salemap, envelope};
use laned::salemap::{Database, Lanes};
use uuid::Uuid;

const TOKEN: &str = "pg-lane-token";

async fn put(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    env: &str,
) -> (u16, Option<String>, String) {
    let r = http
        .put(format!("{base}/v1/sales/{id}"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(env.to_owned())
        .send()
        .await
        .expect("PUT");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (
        r.status().as_u16(),
        retry,
        r.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_id_answers_in_flight_and_an_unreachable_database_answers_503() {
    // It stops the server: a cluster of its own, not the one other tests use.
    let Some(pg) = common::pg::database_alone().await else {
        return;
    };
    let db = Database::Postgres {
        url: pg.url.clone(),
        lock_timeout: Duration::from_millis(200),
    };
    let sm = Salemap::start_on(db, Lanes::single("L03", TOKEN)).await;
    let http = common::client();

    // Another transaction holds the id (a request still posting it).
    let id = Uuid::new_v4().to_string();
    let (mut holder, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO posted (tenant, transaction_id, lane_id, series, receipt_no, lane_seq, kind,
                             business_date, currency, total, fingerprint, envelope, posted_at)
         VALUES ('default', $1, 'L03', 'L03', 1, 1, 'sale', '2026-11-22', 'KES', 0, 'x', '{}', 'x')",
        &[&id],
    )
    .await
    .unwrap();
    let env = envelope(&id, "L03", "L03", 1);
    let (status, retry, body) = put(&http, &sm.url, &id, &env).await;
    assert_eq!((status, retry.as_deref()), (409, Some("2")), "{body}");
    assert!(body.contains("in_flight"), "{body}");
    // It gives up; the retry posts.
    tx.rollback().await.unwrap();
    let (status, _, body) = put(&http, &sm.url, &id, &env).await;
    assert_eq!(status, 201, "{body}");

    // The database goes away: 503 with Retry-After, nothing recorded.
    pg.stop_server();
    let other = Uuid::new_v4().to_string();
    let env2 = envelope(&other, "L03", "L03", 2);
    let (status, retry, body) = put(&http, &sm.url, &other, &env2).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
    pg.start_server();
    // Back: the pool reconnects (a connection broken by the restart may
    // cost one more 503, which the lane simply retries).
    let mut status = 0;
    for _ in 0..3 {
        let (s, _, body) = put(&http, &sm.url, &other, &env2).await;
        status = s;
        if s != 503 {
            assert_eq!(s, 201, "{body}");
            break;
        }
    }
    assert_eq!(status, 201);
    sm.stop().await;
}

/// What one posting reads of the indexes does not grow with what the
/// database holds. A fresh database has no statistics: the planner's
/// guesses tie between an index that finds the one row and one that
/// reads the whole series, and the wrong one, kept (a prepared
/// statement's generic plan made on empty tables) or chosen until
/// autovacuum first analyses the tables, reads every document held for
/// each one posted: ingest slows with every batch. The posting
/// connections' statistics are flushed by ending them
/// (`pg_terminate_backend` waits for each to exit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posting_reads_no_more_of_the_indexes_when_the_database_holds_more() {
    const BATCHES: i64 = 30;
    const PER_BATCH: i64 = 100;
    let Some(pg) = common::pg::database().await else {
        return;
    };
    let db = Database::Postgres {
        url: pg.url.clone(),
        lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
    };
    let sm = Salemap::start_on(db, Lanes::single("L03", super::posting::TOKEN)).await;
    let http = common::client();
    let (admin, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // No statistics for the whole run, as on a fresh or restored database
    // before autovacuum first gets to it (which, left on, could come at
    // any moment of the test).
    admin
        .batch_execute(
            "DO $$ DECLARE t text; BEGIN
                 FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                     EXECUTE format('ALTER TABLE %I SET (autovacuum_enabled = false)', t);
                 END LOOP;
             END $$",
        )
        .await
        .expect("autovacuum off");
    // A lane's journal: each document checked against its chain.
    let mut journal = super::chains::Journal::new("L03");
    for _ in 0..BATCHES {
        let envs: Vec<String> = (0..PER_BATCH).map(|_| journal.next().env).collect();
        let (status, v) = super::posting::batch(&http, &sm.url, "L03", &envs).await;
        assert_eq!(status, 200);
        assert!(
            v["results"]
                .as_array()
                .is_some_and(|r| r.iter().all(|x| x["status"] == 201)),
            "{v}"
        );
    }
    let ended: Option<bool> = admin
        .query_one(
            "SELECT bool_and(pg_terminate_backend(pid, 60000)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("end salemap's connections")
        .get(0);
    assert_eq!(ended, Some(true), "salemap's connections ended");
    let rows = admin
        .query(
            "SELECT relname || '.' || indexrelname, idx_tup_read FROM pg_stat_user_indexes
             ORDER BY idx_tup_read DESC",
            &[],
        )
        .await
        .expect("index statistics");
    let read: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
    let per_sale = read / (BATCHES * PER_BATCH);
    let detail: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    eprintln!("{per_sale} index entries read per sale posted: {detail:?}");
    // A handful of entries per sale (its id, its chain's neighbours, its
    // series' counter and marks: 8 when this was written); a scan of what
    // is held reads thousands.
    assert!(
        per_sale <= 12,
        "{per_sale} index entries read per sale posted: {detail:?}"
    );
    sm.stop().await;
}
