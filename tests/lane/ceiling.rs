//! The sync ceiling (docs/sync-ceiling.md) driven by the `Clock` seam:
//! thresholds to the second, clocks set back, downtime, restarts, the
//! other regimes' rules, and a suspended lane that still drains.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::Lane;
use common::backend::{Backend, Reply};
use jiff::tz::TimeZone;
use laned::common::clock::{Clock, ManualClock};
use laned::lane::ceiling::Limits;
use laned::lane::config::Config;
use serde_json::Value;
use uuid::Uuid;

const TOKEN: &str = "t";

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

const SECOND: Duration = Duration::from_secs(1);

fn clock_at(wall: &str) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(wall.parse().expect("timestamp")))
}

fn cfg(dir: &std::path::Path, backend: &Backend) -> Config {
    let mut c = common::config_with_backend(dir, &backend.url, TOKEN);
    c.drain.backoff_base = SECOND;
    c.drain.backoff_cap = Duration::from_secs(16);
    c.drain.heartbeat_interval = Duration::from_secs(300);
    c.ceiling.time_zone = TimeZone::UTC;
    c
}

async fn start(cfg: Config, clock: &Arc<ManualClock>) -> Lane {
    Lane::start_with_clock(cfg, clock.clone()).await
}

/// `(lane_state, ceiling section)` of the status.
async fn ceiling(lane: &Lane) -> (String, Value) {
    let s = lane.status().await;
    (
        s["lane_state"].as_str().unwrap_or_default().to_owned(),
        s["ceiling"].clone(),
    )
}

async fn wait_state(lane: &Lane, want: &str) {
    lane.until(&format!("lane state {want}"), || async {
        ceiling(lane).await.0 == want
    })
    .await;
}

async fn new_sale(lane: &Lane) -> (u16, Value) {
    lane.put(&Uuid::new_v4().to_string(), &common::sale()).await
}

/// A PUT of a new sale, with the raw response for its headers.
async fn refused_sale(lane: &Lane) -> (Value, Option<String>) {
    let r = lane
        .http
        .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
        .json(&common::sale())
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status().as_u16(), 503);
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (r.json().await.expect("JSON"), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_change_at_exactly_the_thresholds_and_a_heartbeat_lifts_suspension() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    let clock = clock_at("2026-11-22T10:00:00Z");
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    backend.wait_for_requests(1).await;
    wait_state(&lane, "offline").await;

    clock.advance(hours(20) - SECOND);
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "offline", "{c}");
    assert_eq!(c["offline_seconds"], 20 * 3600 - 1);
    assert_eq!(c["nearest_rule"], "sync_ceiling");
    assert_eq!(c["remaining_seconds"], 4 * 3600 + 1);
    assert_eq!(c["limits"]["sync_ceiling_seconds"], 86_400);
    assert_eq!(c["limits"]["warn_after_seconds"], 72_000);

    clock.advance(SECOND);
    assert_eq!(ceiling(&lane).await.0, "warning");
    clock.advance(hours(4) - SECOND);
    assert_eq!(ceiling(&lane).await.0, "warning");
    // The till can warn the cashier: one second left.
    let id = Uuid::new_v4().to_string();
    let (code, ok) = lane.put(&id, &common::sale()).await;
    assert_eq!(code, 201, "{ok}");
    assert_eq!(ok["lane_state"], "warning");
    assert_eq!(ok["ceiling_remaining_seconds"], 1);

    clock.advance(SECOND);
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "suspended");
    assert_eq!(c["remaining_seconds"], 0);
    let (body, retry) = refused_sale(&lane).await;
    assert_eq!(body["code"], "lane_suspended");
    assert_eq!(retry.as_deref(), Some("60"));
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("has not reached head office for 1 day") && msg.contains("resume"),
        "{msg}"
    );
    assert_eq!(body["details"]["rule"], "sync_ceiling");
    // A till that asks for Swahili gets the cashier's sentence in Swahili;
    // the code and details stay as they are.
    let r = lane
        .http
        .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
        .header("Accept-Language", "sw-KE, en;q=0.5")
        .json(&common::sale())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let sw: serde_json::Value = r.json().await.unwrap();
    assert_eq!(sw["code"], "lane_suspended");
    assert_eq!(sw["details"], body["details"]);
    let msg = sw["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "Mashine hii haiwezi kupokea mauzo mapya. Mashine hii haijafikia ofisi kuu kwa siku 1"
        ),
        "{msg}"
    );
    // Reads, and repeats of sales stored before, still work.
    let (code, again) = lane.put(&id, &common::sale()).await;
    assert_eq!((code, &again["receipt_no"]), (200, &ok["receipt_no"]));
    assert_eq!(lane.get(&format!("/v1/sales/{id}")).await.0, 200);
    assert_eq!(lane.get("/v1/sales").await.0, 200);

    // The back-end comes back; the next try succeeds and the lane sells.
    backend.set_down(false);
    clock.advance(Duration::from_secs(16));
    wait_state(&lane, "online").await;
    let (code, body) = new_sale(&lane).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["lane_state"], "online");
    // The refused sale took no receipt number.
    assert_eq!(body["receipt_no"], ok["receipt_no"].as_i64().unwrap() + 1);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_30_hours_takes_nothing_off_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    let clock = clock_at("2026-11-22T10:00:00Z");
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    clock.advance(hours(10));
    clock.set_wall(clock.wall() - hours(30));
    let (_, c) = ceiling(&lane).await;
    assert_eq!(c["offline_seconds"], 10 * 3600, "{c}");
    assert_eq!(c["clock_anomalies"]["count"], 1);
    assert_eq!(c["clock_anomalies"]["last_back"], 30 * 3600);
    clock.advance(hours(14));
    assert_eq!(ceiling(&lane).await.0, "suspended");

    // Set back again while stopped: the restart adds nothing, keeps the
    // 24 h and records a second anomaly.
    lane.stop().await;
    clock.set_wall(clock.wall() - hours(30));
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "suspended", "{c}");
    assert_eq!(c["offline_seconds"], 24 * 3600);
    assert_eq!(c["clock_anomalies"]["count"], 2);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downtime_counts_as_offline_whether_the_lane_stopped_online_or_offline() {
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = clock_at("2026-11-22T10:00:00Z");

    // Stopped while online: the downtime counts from the checkpoint of the
    // last successful exchange.
    let dir = tempfile::tempdir().unwrap();
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    wait_state(&lane, "online").await;
    lane.stop().await;
    backend.set_down(true);
    clock.advance(hours(25));
    let sent = backend.received().len();
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    // Its first heartbeat fails; the next try waits for the clock.
    backend.wait_for_requests(sent + 1).await;
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "suspended", "{c}");
    assert_eq!(c["offline_seconds"], 25 * 3600);
    // With nothing to send, a heartbeat is the exchange that lifts it.
    let before = backend.received().len();
    backend.set_down(false);
    clock.advance(Duration::from_secs(16));
    wait_state(&lane, "online").await;
    let after: Vec<String> = backend.received()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(after, ["/v1/heartbeat"]);
    lane.stop().await;
    backend.set_down(true);

    // Stopped while offline: the accumulated time and the downtime add up.
    let dir = tempfile::tempdir().unwrap();
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    clock.advance(hours(2));
    lane.stop().await;
    clock.advance(hours(23));
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "suspended", "{c}");
    assert_eq!(c["offline_seconds"], 25 * 3600);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_offline_loses_at_most_one_checkpoint_interval() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    let clock = clock_at("2026-11-22T10:00:00Z");
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    let mut checkpoints = lane.ceiling.checkpoints();
    let seen = *checkpoints.borrow_and_update();
    clock.advance(hours(10));
    checkpoints
        .wait_for(|n| *n > seen)
        .await
        .expect("a checkpoint");
    clock.advance(Duration::from_secs(30));
    // The database as a crash right now would leave it.
    let crashed = tempfile::tempdir().unwrap();
    let copy = crashed.path().join(laned::lane::store::DB_FILE);
    let conn = rusqlite::Connection::open(dir.path().join(laned::lane::store::DB_FILE)).unwrap();
    conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    drop(conn);
    clock.advance(hours(1));
    let restarted = start(cfg(crashed.path(), &backend), &clock).await;
    let (_, c) = ceiling(&restarted).await;
    // 10 h checkpointed, then 1 h 30 s until the restart: nothing lost.
    assert_eq!(c["offline_seconds"], 11 * 3600 + 30, "{c}");
    restarted.stop().await;
    lane.stop().await;
}

/// A power cut, and the till comes back with its clock behind the last
/// checkpoint: no clock that ran while it was off can say for how long, so
/// the lane counts it as past the ceiling, says so in status and on the
/// page, and sells again once head office answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_and_a_clock_behind_the_checkpoint_suspend_until_the_backend_answers() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    let clock = clock_at("2026-11-22T10:00:00Z");
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    assert_eq!(new_sale(&lane).await.0, 201);
    let mut checkpoints = lane.ceiling.checkpoints();
    let seen = *checkpoints.borrow_and_update();
    clock.advance(hours(2));
    checkpoints
        .wait_for(|n| *n > seen)
        .await
        .expect("a checkpoint");
    // The database as the power cut leaves it.
    let cut = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join(laned::lane::store::DB_FILE)).unwrap();
    let copy = cut.path().join(laned::lane::store::DB_FILE);
    conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    drop(conn);
    lane.stop().await;
    // Off for three days; the clock comes back a day behind.
    clock.reboot(hours(72));
    clock.set_wall(clock.wall() - hours(72 + 24));
    let lane = start(cfg(cut.path(), &backend), &clock).await;
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "suspended", "{c}");
    assert_eq!(c["downtime_unknown"], true, "{c}");
    assert_eq!(c["nearest_rule"], "downtime_unknown");
    assert_eq!(
        c["offline_seconds"],
        2 * 3600,
        "the known part is kept: {c}"
    );
    let (body, _) = refused_sale(&lane).await;
    assert_eq!(body["details"]["rule"], "downtime_unknown", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("clock set back")),
        "{body}"
    );
    let page = lane.http.get(&lane.base).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("clock was set back while it was off"),
        "{page}"
    );
    // A restart does not clear it, whatever the clock says by then.
    lane.stop().await;
    clock.set_wall(clock.wall() + hours(96));
    let lane = start(cfg(cut.path(), &backend), &clock).await;
    assert_eq!(ceiling(&lane).await.1["downtime_unknown"], true);
    // Head office answers: the next exchange clears it.
    backend.set_down(false);
    clock.advance(Duration::from_secs(16));
    wait_state(&lane, "online").await;
    assert_eq!(ceiling(&lane).await.1["downtime_unknown"], false);
    assert_eq!(new_sale(&lane).await.0, 201);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_lane_still_drains_and_sells_again_once_the_backend_answers() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    let clock = clock_at("2026-11-22T10:00:00Z");
    let lane = start(cfg(dir.path(), &backend), &clock).await;
    let mut ids = vec![];
    for _ in 0..3 {
        let id = Uuid::new_v4().to_string();
        assert_eq!(lane.put(&id, &common::sale()).await.0, 201);
        ids.push(id);
    }
    clock.advance(hours(24));
    assert_eq!(ceiling(&lane).await.0, "suspended");
    refused_sale(&lane).await;
    assert_eq!(lane.status().await["counts"]["pending"], 3);

    backend.set_down(false);
    clock.advance(Duration::from_secs(16));
    lane.until("all three posted", || async {
        backend.posted_order().len() == 3
    })
    .await;
    assert_eq!(backend.posted_order(), ids);
    wait_state(&lane, "online").await;
    assert_eq!(new_sale(&lane).await.0, 201);
    // The back-end's clock, from the Date header: the real time, while the
    // lane's clock says 2026-11-23T10:00.
    let c = ceiling(&lane).await.1;
    let offset = c["backend_clock"]["offset_seconds"]
        .as_i64()
        .expect("an offset");
    let expected = jiff::Timestamp::now()
        .duration_since(clock.wall())
        .as_secs();
    assert!((offset - expected).abs() <= 5, "{offset} vs {expected}");
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sale_older_than_max_unsent_age_suspends_an_online_lane() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = clock_at("2026-11-22T10:00:00Z");
    let mut c = cfg(dir.path(), &backend);
    c.ceiling.limits = Limits {
        sync_ceiling: None,
        max_unsent_age: Some(hours(48)),
        ..Limits::default()
    };
    let lane = start(c, &clock).await;
    wait_state(&lane, "online").await;
    let id = Uuid::new_v4().to_string();
    backend.script((0..20).map(|_| Reply::RefuseItems(vec![(id.clone(), 422, "unknown_sku")])));
    assert_eq!(lane.put(&id, &common::sale()).await.0, 201);
    lane.until("the sale is stuck", || async {
        lane.sale_state(&id).await == "stuck"
    })
    .await;

    clock.advance(hours(48) - SECOND);
    let (state, c) = ceiling(&lane).await;
    assert_ne!(state, "suspended", "{c}");
    assert_eq!(c["nearest_rule"], "max_unsent_age");
    assert_eq!(c["remaining_seconds"], 1);
    clock.advance(SECOND);
    assert_eq!(ceiling(&lane).await.0, "suspended");
    let (body, _) = refused_sale(&lane).await;
    assert_eq!(body["details"]["rule"], "max_unsent_age");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("oldest sale not yet sent to head office is 2 days old"),
        "{body}"
    );

    // The back-end takes it on the next re-check: the lane sells again.
    backend.clear_script();
    assert_eq!(lane.sync_now().await, 202);
    lane.until("the sale is posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    lane.until("the lane sells again", || async {
        ceiling(&lane).await.0 != "suspended"
    })
    .await;
    assert_eq!(new_sale(&lane).await.0, 201);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_budget_counts_in_the_lane_time_zone_across_the_month_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.set_down(true);
    // 22:00 on 30 November in UTC+2: December begins in two hours.
    let clock = clock_at("2026-11-30T20:00:00Z");
    let mut c = cfg(dir.path(), &backend);
    c.ceiling.time_zone = TimeZone::fixed(jiff::tz::offset(2));
    c.ceiling.limits = Limits {
        sync_ceiling: None,
        monthly_offline_budget: Some(hours(10)),
        ..Limits::default()
    };
    let lane = start(c, &clock).await;
    clock.advance(hours(6));
    let (state, c) = ceiling(&lane).await;
    assert_eq!(state, "offline", "{c}");
    assert_eq!(c["month"], "2026-12");
    assert_eq!(c["month_offline_seconds"], 4 * 3600);
    assert_eq!(c["nearest_rule"], "monthly_offline_budget");
    assert_eq!(c["remaining_seconds"], 6 * 3600);

    // Online for a while: the budget does not move.
    backend.set_down(false);
    clock.advance(Duration::from_secs(16));
    wait_state(&lane, "online").await;
    // The lane state turns online as the heartbeat's answer arrives, a
    // moment before the drain clears the last error in the store: wait for
    // that too, or the failed heartbeat awaited below could be this old one.
    lane.until("the success is recorded", || async {
        lane.status().await["backend"]["last_error"].is_null()
    })
    .await;
    let used = ceiling(&lane).await.1["month_offline_seconds"]
        .as_u64()
        .unwrap();
    assert_eq!(used, 4 * 3600 + 16);
    clock.advance(Duration::from_secs(200));
    assert_eq!(ceiling(&lane).await.1["month_offline_seconds"], used);

    // Offline again: the heartbeat 300 s after the last exchange fails, and
    // so does every retry for a minute, after which the lane is offline
    // (since its last success); the same month's budget runs out.
    backend.set_down(true);
    clock.advance(Duration::from_secs(100));
    lane.until("the failed heartbeat is recorded", || async {
        !lane.status().await["backend"]["last_error"].is_null()
    })
    .await;
    assert_eq!(ceiling(&lane).await.0, "online", "a blip is not an outage");
    clock.advance(laned::lane::ceiling::OFFLINE_AFTER);
    wait_state(&lane, "offline").await;
    let left = ceiling(&lane).await.1["remaining_seconds"]
        .as_u64()
        .unwrap();
    assert_eq!(left, 6 * 3600 - 16 - 300 - 60);
    clock.advance(Duration::from_secs(left) - SECOND);
    assert_eq!(ceiling(&lane).await.0, "offline");
    clock.advance(SECOND);
    assert_eq!(ceiling(&lane).await.0, "suspended");
    let (body, _) = refused_sale(&lane).await;
    assert_eq!(body["details"]["rule"], "monthly_offline_budget");
    lane.stop().await;
}
