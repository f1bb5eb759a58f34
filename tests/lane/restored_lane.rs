//! A lane whose database was restored from an old copy must not issue a
//! receipt number twice: salemap's heartbeat shows it higher numbers than
//! the lane's counter, the lane refuses new sales until an operator
//! acknowledges, and numbering then continues above the back-end's.

use crate::common;

use std::time::Duration;

use common::Lane;
use common::salemap::Salemap;
use laned::salemap::Lanes;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "restore-lane-token";

fn cfg(dir: &std::path::Path, url: &str) -> laned::lane::config::Config {
    let mut c = common::config_with_backend(dir, url, TOKEN);
    c.drain.backoff_base = Duration::from_millis(20);
    c.drain.backoff_cap = Duration::from_millis(100);
    c
}

async fn ring(lane: &Lane) -> (u16, Value) {
    lane.put(&Uuid::new_v4().to_string(), &common::sale()).await
}

async fn posted(lane: &Lane) -> u64 {
    lane.status().await["counts"]["posted"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_restored_from_an_old_copy_waits_for_an_operator_and_never_reuses_a_number() {
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start(&dir.path().join("salemap.db"), Lanes::single("L03", TOKEN)).await;
    let old = restored_copy(dir.path(), &sm.url).await;

    // The till's disk dies; the backup goes back on.
    let lane = Lane::start_with(cfg(&old, &sm.url)).await;
    lane.until("the guard is raised", || async {
        !lane.status().await["restored_from_old_copy"].is_null()
    })
    .await;
    let guard = lane.status().await["restored_from_old_copy"].clone();
    assert_eq!(guard["series"]["L03"], json!({"lane": 2, "backend": 5}));
    let (code, body) = ring(&lane).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "restored_from_old_copy");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("L03-000005") && msg.contains("L03-000002"),
        "{msg}"
    );
    // The cashier's sentence in the till's language; the code stays.
    let r = lane
        .http
        .put(format!("{}/v1/sales/{}", lane.base, uuid::Uuid::new_v4()))
        .header("Accept-Language", "uk")
        .json(&common::sale())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "restored_from_old_copy");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Ця каса не може приймати нові продажі") && msg.contains("L03-000005"),
        "{msg}"
    );
    // Store staff see it first on the page, in red.
    let (status, page) = lane.get_text("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("class=\"banner stop\"")
            && page.contains("data-trouble=\"restored_from_old_copy\""),
        "{page}"
    );
    assert_eq!(lane.status().await["verdict"], "stopped");
    // A restart does not lift it.
    lane.stop().await;
    let lane = Lane::start_with(cfg(&old, &sm.url)).await;
    assert_eq!(ring(&lane).await.0, 409);

    // Support acknowledges, with a reason.
    let ack = |reason: Value| {
        let (http, base, token) = (
            lane.http.clone(),
            lane.base.clone(),
            lane.admin_token.clone(),
        );
        async move {
            let r = http
                .post(format!("{base}/v1/admin/acknowledge-restore"))
                .bearer_auth(token)
                .header("X-Laned-Actor", "support:ana")
                .json(&reason)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(ack(json!({})).await.0, 422);
    let (code, body) = ack(json!({"reason": "SSD replaced, restored Friday's backup"})).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["continues_after"]["L03"], 5);
    assert_eq!(ack(json!({"reason": "again"})).await.0, 409);
    // Numbering continues above the back-end's: 6, never 3.
    let (code, body) = ring(&lane).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["receipt_no"], 6);
    lane.until("the new sale posted", || async { posted(&lane).await == 3 })
        .await;
    assert!(lane.status().await["restored_from_old_copy"].is_null());
    lane.stop().await;
    // The acknowledgement is in the audit log, with who and why.
    let conn = rusqlite::Connection::open(old.join(laned::lane::store::DB_FILE)).unwrap();
    let (actor, reason, details): (String, String, String) = conn
        .query_row(
            "SELECT actor, reason, details FROM audit_log WHERE action = 'acknowledge_restore'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(actor, "support:ana");
    assert_eq!(reason, "SSD replaced, restored Friday's backup");
    assert!(details.contains("\"backend\":5"), "{details}");
    // The journal's chain holds on the lane, but its numbering skips 3..5:
    // those documents are the lost copy's, held by head office.
    let journal = laned::lane::store::ReadOnly::open(&old)
        .unwrap()
        .verify_journal()
        .unwrap();
    let l03 = &journal.series["L03"];
    assert_eq!(l03.broken, None);
    assert_eq!(l03.gaps, [(3, 5)]);
    assert!(!l03.intact());
    sm.stop().await;
}

/// A lane that posts two sales, is backed up (a consistent copy of its
/// database), then posts three more and stops; returns the backup's
/// directory, for a lane that comes back from it.
async fn restored_copy(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let live = dir.join("lane");
    let lane = Lane::start_with(cfg(&live, url)).await;
    for _ in 0..2 {
        assert_eq!(ring(&lane).await.0, 201);
    }
    lane.until("two posted", || async { posted(&lane).await == 2 })
        .await;
    let old = dir.join("old-copy");
    std::fs::create_dir_all(&old).unwrap();
    let conn = rusqlite::Connection::open(live.join(laned::lane::store::DB_FILE)).unwrap();
    conn.execute(
        "VACUUM INTO ?1",
        [old.join(laned::lane::store::DB_FILE).to_str().unwrap()],
    )
    .unwrap();
    drop(conn);
    for _ in 0..3 {
        assert_eq!(ring(&lane).await.0, 201);
    }
    lane.until("five posted", || async { posted(&lane).await == 5 })
        .await;
    lane.stop().await;
    old
}

/// The first sale rung after the restored lane starts, while its back-end
/// is reachable, must not take receipt 3 (the back-end holds 3..5): the
/// lane compares numbers before it takes a new sale. Also against a
/// back-end that accepts any lane (`--allow-any-lane`), which can only
/// answer for the lane the heartbeat names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_sale_after_a_restore_waits_for_the_number_check_and_is_refused() {
    for lanes in [Lanes::single("L03", TOKEN), Lanes::AnyLane] {
        let dir = tempfile::tempdir().unwrap();
        let sm = Salemap::start(&dir.path().join("salemap.db"), lanes.clone()).await;
        let old = restored_copy(dir.path(), &sm.url).await;
        let lane = Lane::start_with(cfg(&old, &sm.url)).await;
        // At once: no waiting for the guard first.
        let (code, body) = ring(&lane).await;
        assert_eq!(
            (code, body["code"].as_str()),
            (409, Some("restored_from_old_copy")),
            "{lanes:?}: the first sale after the restore was answered {body}"
        );
        let guard = lane.status().await["restored_from_old_copy"].clone();
        assert_eq!(guard["series"]["L03"], json!({"lane": 2, "backend": 5}));
        lane.stop().await;
        sm.stop().await;
    }
}

/// A back-end that takes its time over the start-up comparison holds new
/// sales back for at most `NUMBER_CHECK_WAIT` (by the lane's clock); then
/// the lane sells offline-first, and the comparison, when it comes,
/// still raises the guard. The heartbeat names the lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_up_check_holds_new_sales_only_for_the_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let backend = common::backend::Backend::start(Some(TOKEN)).await;
    backend.hold_heartbeats();
    backend.set_last_receipt_no(json!({"L03": 5}));
    let clock = std::sync::Arc::new(laned::common::clock::ManualClock::new(
        "2026-11-22T10:00:00Z".parse().unwrap(),
    ));
    let lane = Lane::start_with_clock(cfg(dir.path(), &backend.url), clock.clone()).await;
    backend.wait_for_requests(1).await;
    let first = &backend.received()[0];
    assert_eq!(
        (first.path.as_str(), first.query.as_deref()),
        ("/v1/heartbeat", Some("lane_id=L03"))
    );
    let sale = tokio::spawn({
        let (http, base) = (lane.http.clone(), lane.base.clone());
        async move {
            let r = http
                .put(format!("{base}/v1/sales/{}", Uuid::new_v4()))
                .json(&common::sale())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    });
    clock.advance(laned::lane::guard::NUMBER_CHECK_WAIT);
    let (code, body) = sale.await.unwrap();
    assert_eq!((code, &body["receipt_no"]), (201, &json!(1)), "{body}");
    backend.release_heartbeats();
    lane.until("the guard is raised", || async {
        !lane.status().await["restored_from_old_copy"].is_null()
    })
    .await;
    assert_eq!(ring(&lane).await.0, 409);
    lane.stop().await;
}

/// A lane restored from an old copy while head office is unreachable sells
/// offline-first; its first new document links to the copy's last one, in
/// the place of a document head office already holds: salemap refuses it
/// as `chain_conflict` (a forked journal), and the sale is stuck with that
/// code for support.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_lane_that_rings_offline_is_refused_at_salemap_as_a_forked_chain() {
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start(&dir.path().join("salemap.db"), Lanes::single("L03", TOKEN)).await;
    let old = restored_copy(dir.path(), &sm.url).await;
    let (db, lanes, addr) = sm.stop().await;
    // Head office is down: the start-up comparison fails, and the lane
    // sells offline-first (receipt 3, which head office already holds).
    let lane = Lane::start_with(cfg(&old, &format!("http://{addr}"))).await;
    let id = Uuid::new_v4().to_string();
    let (code, body) = lane.put(&id, &common::sale()).await;
    assert_eq!((code, &body["receipt_no"]), (201, &json!(3)), "{body}");
    let sm = Salemap::start_at(db, lanes, addr).await;
    assert_eq!(lane.sync_now().await, 202);
    lane.until("the forked sale refused", || async {
        lane.sale_state(&id).await == "stuck"
    })
    .await;
    let (_, sale) = lane.get(&format!("/v1/sales/{id}")).await;
    assert_eq!(sale["last_error"]["code"], "chain_conflict", "{sale}");
    // Head office sees it: the lane's page puts the forked journal first,
    // with the refused sale and the document it contradicts.
    let detail: serde_json::Value = common::client()
        .get(format!("{}/v1/lanes/L03", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["status"], "chain_conflict", "{detail}");
    assert_eq!(detail["conflicts"][0]["transaction_id"], id, "{detail}");
    assert_eq!(detail["conflicts"][0]["number"], 3, "{detail}");
    let page = common::client()
        .get(format!("{}/lanes/L03", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-status=\"chain_conflict\""), "{page}");
    assert!(page.contains(&id), "{page}");
    lane.stop().await;
    sm.stop().await;
}
