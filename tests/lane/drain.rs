//! The drain against a scripted back-end: every stored sale delivered
//! exactly once, in order, through lost answers, refusals and outages.

use crate::common;

use std::time::Duration;

use common::backend::{Backend, Reply};
use common::{Lane, sale_with, secret};
use laned::lane::config::{Config, OnReject};
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "lane-token-5f1e";

/// A lane delivering to `backend`. Backoff is long, so that a retry happens
/// only when a test asks for it (POST /v1/admin/sync): no test waits on a
/// timer.
fn config_for(dir: &std::path::Path, backend: &Backend) -> Config {
    let mut cfg = common::config_with_backend(dir, &backend.url, TOKEN);
    cfg.drain.backoff_base = Duration::from_secs(3600);
    cfg.drain.backoff_cap = Duration::from_secs(3600);
    cfg
}

async fn counts(lane: &Lane) -> Value {
    lane.status().await["counts"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_delivered_once_each_in_lane_order_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    // Ring 250 sales with no back-end configured, then start delivering.
    let lane = Lane::start(dir.path()).await;
    let ids = lane.ring(250).await;
    lane.stop().await;
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    lane.until("all 250 posted", || async {
        counts(&lane).await["posted"] == 250
    })
    .await;

    assert_eq!(
        backend.posted_order(),
        ids,
        "the back-end saw sales out of lane order"
    );
    assert!(backend.post_counts().values().all(|n| *n == 1));
    let batches: Vec<_> = backend
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/sales:batch")
        .collect();
    assert_eq!(
        batches.iter().map(|b| b.ids().len()).collect::<Vec<_>>(),
        [100, 100, 50]
    );
    for b in &batches {
        assert_eq!(b.headers["authorization"], format!("Bearer {TOKEN}"));
    }
    let s = lane.get(&format!("/v1/sales/{}", ids[0])).await.1;
    assert_eq!(
        (
            s["state"].as_str(),
            s["doc_no"].as_str(),
            s["attempts"].as_i64()
        ),
        (Some("posted"), Some("D000001"), Some(1))
    );
    let st = lane.status().await;
    assert_eq!(st["lane_state"], "online");
    assert_eq!(st["backend"]["consecutive_failures"], 0);
    assert!(st["backend"]["last_success_at"].is_string());
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_code_ends_in_its_documented_state() {
    // (scripted answer, expected sale state, expected code on the sale or the lane)
    let cases: Vec<(u16, Value, &str, &str)> = vec![
        (
            200,
            json!({"doc_no": "X9", "posted_at": "2026-11-22T12:00:00Z"}),
            "posted",
            "",
        ),
        (
            422,
            json!({"code": "payload_mismatch", "message": "same id, other bytes"}),
            "stuck",
            "payload_mismatch",
        ),
        (
            422,
            json!({"code": "receipt_no_conflict", "message": "L03/1 is posted under another id"}),
            "stuck",
            "receipt_no_conflict",
        ),
        (
            400,
            json!({"code": "bad_request", "message": "no"}),
            "stuck",
            "bad_request",
        ),
        (413, json!({}), "stuck", "http_413"),
        (401, json!({}), "pending", "fault:unauthorized"),
        (403, json!({}), "pending", "fault:forbidden"),
        (404, json!({}), "pending", "fault:not_found"),
        (408, json!({}), "pending", "retry:http_408"),
        (
            409,
            json!({"code": "in_flight", "message": "being posted"}),
            "pending",
            "retry:in_flight",
        ),
        (425, json!({}), "pending", "retry:http_425"),
        (429, json!({}), "pending", "retry:http_429"),
        (500, json!({}), "pending", "retry:http_500"),
        (503, json!({}), "pending", "retry:http_503"),
    ];
    let mut failures = vec![];
    for (status, body, want_state, want_code) in cases {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::start(Some(TOKEN)).await;
        backend.without_batch();
        let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
        let id = Uuid::new_v4().to_string();
        let mut body = body;
        if status == 200 {
            body["transaction_id"] = json!(id);
        }
        backend.script([Reply::Status(status, body, vec![])]);
        assert_eq!(lane.put(&id, &common::sale()).await.0, 201);
        lane.until("the sale's PUT is answered and recorded", || async {
            lane.get(&format!("/v1/sales/{id}")).await.1["attempts"] == 1
        })
        .await;
        let sale = lane.get(&format!("/v1/sales/{id}")).await.1;
        let st = lane.status().await;
        let got_code = match (
            want_code.split_once(':'),
            sale["last_error"]["code"].as_str(),
        ) {
            (Some(("fault", _)), _) => format!(
                "fault:{}",
                st["backend"]["fault"]["code"].as_str().unwrap_or("-")
            ),
            (Some(("retry", _)), c) => {
                assert!(
                    st["backend"]["next_attempt_at"].is_string(),
                    "{status}: no retry scheduled"
                );
                assert_eq!(st["backend"]["consecutive_failures"], 1, "{status}");
                format!("retry:{}", c.unwrap_or("-"))
            }
            (_, c) => c.unwrap_or("").to_owned(),
        };
        if sale["state"] != want_state || got_code != want_code {
            failures.push(format!(
                "{status}: got {} / {got_code}, want {want_state} / {want_code}",
                sale["state"]
            ));
        }
        if want_state == "posted" && sale["doc_no"] != "X9" {
            failures.push(format!("{status}: doc_no {}", sale["doc_no"]));
        }
        lane.stop().await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retried_and_answered_as_a_replay_so_the_back_end_holds_the_sale_once() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    backend.script([Reply::CommitThenDrop]);
    let id = lane.ring(1).await.remove(0);
    lane.until("the lost answer is recorded", || async {
        lane.get(&format!("/v1/sales/{id}")).await.1["attempts"] == 1
    })
    .await;
    assert_eq!(lane.sale_state(&id).await, "pending");
    assert_eq!(backend.post_counts()[&id], 1, "the back-end did commit");

    assert_eq!(lane.sync_now().await, 202);
    lane.until("posted on the retry", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    let puts: Vec<_> = backend
        .received()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(
        puts[0].body, puts[1].body,
        "a retry must send the same bytes"
    );
    for p in &puts {
        assert_eq!(p.headers["idempotency-key"], id.as_str());
    }
    assert_eq!(backend.post_counts()[&id], 1, "posted twice");
    lane.stop().await;
}

/// Rings sale A, sale B and C, a return of A.
async fn sale_sale_return(lane: &Lane) -> (String, String, String) {
    let a = Uuid::new_v4().to_string();
    let b = Uuid::new_v4().to_string();
    let c = Uuid::new_v4().to_string();
    lane.put(&a, &sale_with("A", 1, 500)).await;
    lane.put(&b, &sale_with("B", 1, 700)).await;
    let mut ret = sale_with("A", 1, 500);
    ret["kind"] = json!("return");
    ret["references"] = json!(a);
    lane.put(&c, &ret).await;
    (a, b, c)
}

/// A refused sale A, a normal sale B, and C, a return of A.
async fn refused_then_more(lane: &Lane, backend: &Backend) -> (String, String, String) {
    backend.script([Reply::Status(
        422,
        json!({"code": "unknown_sku", "message": "SKU A not in catalogue"}),
        vec![],
    )]);
    sale_sale_return(lane).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn park_mode_passes_a_stuck_sale_but_its_return_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    let (a, b, c) = refused_then_more(&lane, &backend).await;
    lane.until("A stuck and B posted", || async {
        lane.sale_state(&a).await == "stuck" && lane.sale_state(&b).await == "posted"
    })
    .await;
    let sc = lane.get(&format!("/v1/sales/{c}")).await.1;
    assert_eq!(sc["state"], "pending");
    assert_eq!(
        sc["waiting_for"],
        a.as_str(),
        "the return says what it waits for"
    );
    assert!(
        !backend.posted_order().contains(&c),
        "a return went before its sale"
    );

    // The back-end now accepts A; an operator asks for a re-check.
    assert_eq!(lane.sync_now().await, 202);
    lane.until("A and then C posted", || async {
        lane.sale_state(&c).await == "posted"
    })
    .await;
    assert_eq!(backend.posted_order(), [b, a, c]);
    lane.stop().await;
}

/// An operator asks for a sync while the drain's attempt at a stuck sale is
/// still on the wire, and that attempt is then refused: the request is not
/// swallowed by the refusal, the sale is tried again after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_requested_during_a_refused_attempt_still_rechecks_the_stuck_sale() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    let unknown = || {
        Reply::Status(
            422,
            json!({"code": "unknown_sku", "message": "SKU A not in catalogue"}),
            vec![],
        )
    };
    backend.script([unknown(), unknown()]);
    let id = Uuid::new_v4().to_string();
    assert_eq!(lane.put(&id, &common::sale()).await.0, 201);
    lane.until("the sale is stuck", || async {
        lane.sale_state(&id).await == "stuck"
    })
    .await;

    // A first sync: the re-check goes out and is held at the back-end,
    // with its refusal already decided.
    backend.hold_sales();
    let sent = backend.sale_requests();
    assert_eq!(lane.sync_now().await, 202);
    backend.wait_for_sale_requests(sent + 1).await;
    // Head office fixes the catalogue; support asks again, then the
    // refusal of the earlier attempt arrives.
    assert_eq!(lane.sync_now().await, 202);
    backend.release_sales();
    lane.until("the sale is posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    assert_eq!(backend.posted_order(), [id]);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_mode_stops_at_a_stuck_sale_until_it_posts() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let mut cfg = config_for(dir.path(), &backend);
    cfg.drain.on_reject = OnReject::Block;
    let lane = Lane::start_with(cfg).await;
    let (a, b, c) = refused_then_more(&lane, &backend).await;
    lane.until("A stuck", || async { lane.sale_state(&a).await == "stuck" })
        .await;
    // Give the drain every chance to misbehave: wake it, let it finish a round.
    let mut rounds = lane.drain.as_ref().unwrap().rounds();
    let before = *rounds.borrow_and_update();
    lane.drain.as_ref().unwrap().wake();
    lane.until("another round", || async { *rounds.borrow() > before })
        .await;
    assert_eq!(lane.sale_state(&b).await, "pending");
    assert!(
        backend.posted_order().is_empty(),
        "something passed the stuck sale"
    );

    assert_eq!(lane.sync_now().await, 202);
    lane.until("everything posted", || async {
        counts(&lane).await["posted"] == 3
    })
    .await;
    assert_eq!(backend.posted_order(), [a, b, c]);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_pauses_delivery_without_touching_sales_and_a_fixed_token_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some("the-right-token")).await;
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    let ids = lane.ring(3).await;
    lane.until("the fault is recorded", || async {
        lane.status().await["backend"]["fault"]["code"] == "unauthorized"
    })
    .await;
    let st = lane.status().await;
    assert_eq!(st["counts"]["pending"], 3, "a 401 changed a sale's state");
    assert_eq!(st["lane_state"], "offline");
    let text = st.to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains("the-right-token"),
        "a token in status: {text}"
    );
    // Depending on timing the fault came from the start-up heartbeat or
    // from the first batch; either way, once paused no sale is sent. Ask
    // for a probe: the drain tries the link with a heartbeat, sends nothing.
    let sale_requests = || {
        backend
            .received()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let sent_at_fault = sale_requests();
    assert!(
        sent_at_fault <= 1,
        "{sent_at_fault} sale requests before the fault"
    );
    let probes = backend.received().len();
    lane.drain.as_ref().unwrap().probe();
    tokio::time::timeout(
        Duration::from_secs(60),
        backend.wait_for_requests(probes + 1),
    )
    .await
    .expect("a wake-up while paused probes the link");
    let last = backend.received().pop().unwrap();
    assert_eq!(last.path, "/v1/heartbeat", "the probe is a heartbeat");
    assert_eq!(
        sale_requests(),
        sent_at_fault,
        "sales were sent while paused"
    );
    assert_eq!(lane.status().await["counts"]["pending"], 3);

    lane.drain
        .as_ref()
        .unwrap()
        .set_token(Some(secret("the-right-token")));
    lane.until("all posted after the fix", || async {
        counts(&lane).await["posted"] == 3
    })
    .await;
    assert_eq!(backend.posted_order(), ids);
    assert_eq!(lane.status().await["backend"]["fault"], Value::Null);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sync_needs_the_admin_token_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    let url = format!("{}/v1/admin/sync", lane.base);
    let r = lane.http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = lane
        .http
        .post(&url)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(lane.sync_now().await, 202);
    lane.stop().await;
    let c = rusqlite::Connection::open(dir.path().join("lane.db")).unwrap();
    let (actor, action): (String, String) = c
        .query_row("SELECT actor, action FROM audit_log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((actor.as_str(), action.as_str()), ("admin-api", "sync"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_failure_is_retried_later_and_changes_no_sale() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    // https:// to a server that speaks plain HTTP: the handshake fails.
    // The sale is stored first, so the drain's first act is to send it.
    let lane = Lane::start(dir.path()).await;
    let id = lane.ring(1).await.remove(0);
    lane.stop().await;
    let mut cfg = config_for(dir.path(), &backend);
    cfg.backend_url = Some(format!("https://{}", backend.addr));
    let lane = Lane::start_with(cfg).await;
    lane.until("the failure is recorded", || async {
        lane.status().await["backend"]["consecutive_failures"].as_i64() >= Some(1)
    })
    .await;
    let st = lane.status().await;
    assert!(
        st["backend"]["next_attempt_at"].is_string(),
        "no retry scheduled: {st}"
    );
    assert!(
        st["backend"]["fault"].is_null(),
        "a TLS failure is not the lane's fault: {st}"
    );
    let code = st["backend"]["last_error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        ["connect", "network", "timeout"].contains(&code.as_str()),
        "{code}"
    );
    assert_eq!(lane.sale_state(&id).await, "pending");
    assert!(backend.posted_order().is_empty());
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_retry_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    backend.script([Reply::Status(503, json!({}), vec![])]);
    let id = lane.ring(1).await.remove(0);
    lane.until("the failure is recorded", || async {
        lane.status().await["backend"]["next_attempt_at"].is_string()
    })
    .await;
    let scheduled = lane.status().await["backend"]["next_attempt_at"].clone();
    lane.stop().await;
    let puts = || {
        backend
            .received()
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
    };
    assert_eq!(puts(), 1);

    // After a restart the drain looks, finds the schedule, and sleeps.
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    lane.until("the drain has looked", || async {
        *lane.drain.as_ref().unwrap().rounds().borrow() >= 1
    })
    .await;
    assert_eq!(puts(), 1, "a restart retried before the scheduled time");
    assert_eq!(lane.status().await["backend"]["next_attempt_at"], scheduled);
    assert_eq!(lane.sale_state(&id).await, "pending");
    lane.stop().await;
}

/// outcome, HTTP status, error code, message, started_at, duration_ms
type AttemptRow = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    i64,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_recorded_with_its_outcome_status_and_error() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    backend.script([
        Reply::Status(
            503,
            json!({"code": "maintenance", "message": "back at noon"}),
            vec![],
        ),
        Reply::Status(
            422,
            json!({"code": "unknown_sku", "message": "SKU not in catalogue"}),
            vec![],
        ),
    ]);
    let id = lane.ring(1).await.remove(0);
    lane.until("first attempt", || async {
        lane.get(&format!("/v1/sales/{id}")).await.1["attempts"] == 1
    })
    .await;
    lane.sync_now().await;
    lane.until("stuck", || async { lane.sale_state(&id).await == "stuck" })
        .await;
    lane.sync_now().await;
    lane.until("posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    lane.stop().await;

    let c = rusqlite::Connection::open(dir.path().join("lane.db")).unwrap();
    let mut st = c
        .prepare(
            "SELECT a.outcome, a.http_status, a.error_code, a.message, a.started_at, a.duration_ms
             FROM attempts a JOIN sales s ON s.seq = a.seq WHERE s.transaction_id = ?1 ORDER BY a.id",
        )
        .unwrap();
    let rows: Vec<AttemptRow> = st
        .query_map([&id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let summary: Vec<(&str, Option<i64>, Option<&str>)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1, r.2.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("retry", Some(503), Some("maintenance")),
            ("stuck", Some(422), Some("unknown_sku")),
            ("posted", Some(201), None),
        ]
    );
    assert_eq!(rows[1].3.as_deref(), Some("SKU not in catalogue"));
    assert!(rows.iter().all(|r| r.4.ends_with('Z') && r.5 >= 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_return_never_shares_a_batch_with_the_sale_it_references() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    // Ring sale A, sale B and C (a return of A) before any back-end is
    // configured, so that all three are pending when delivery starts.
    let lane = Lane::start(dir.path()).await;
    let (a, b, c) = sale_sale_return(&lane).await;
    lane.stop().await;
    // The back-end refuses A inside the first batch.
    backend.script([Reply::RefuseItems(vec![(a.clone(), 422, "unknown_sku")])]);
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    lane.until("A stuck and B posted", || async {
        lane.sale_state(&a).await == "stuck" && lane.sale_state(&b).await == "posted"
    })
    .await;
    let sent: Vec<String> = backend.received().iter().flat_map(|r| r.ids()).collect();
    assert!(
        !sent.contains(&c),
        "the return was sent while its sale was not posted"
    );
    assert_eq!(lane.sale_state(&c).await, "pending");
    assert_eq!(lane.sync_now().await, 202);
    lane.until("C posted after A", || async {
        lane.sale_state(&c).await == "posted"
    })
    .await;
    assert_eq!(backend.posted_order(), [b, a, c]);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_item_without_posted_at_still_counts_as_posted() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let lane = Lane::start(dir.path()).await;
    let id = lane.ring(1).await.remove(0);
    lane.stop().await;
    // docs/backend-contract.md §4 requires doc_no but not posted_at of a
    // batch item.
    backend.script([Reply::Status(
        200,
        json!({"results": [{"transaction_id": id, "status": 201, "doc_no": "Z-1"}]}),
        vec![],
    )]);
    let lane = Lane::start_with(config_for(dir.path(), &backend)).await;
    lane.until("posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    let s = lane.get(&format!("/v1/sales/{id}")).await.1;
    assert_eq!(s["doc_no"], "Z-1");
    assert!(s["posted_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    lane.stop().await;
}
