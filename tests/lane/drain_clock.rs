//! The drain's timers driven by the `Clock` seam: backoff and heartbeats
//! move only when the test moves the clock, and nothing runs in between.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::Lane;
use common::backend::{Backend, Reply};
use laned::common::clock::{Clock, ManualClock};
use serde_json::json;
use uuid::Uuid;

const TOKEN: &str = "t";

async fn lane_with_clock(
    dir: &std::path::Path,
    backend: &Backend,
    clock: Arc<ManualClock>,
) -> Lane {
    let mut cfg = common::config_with_backend(dir, &backend.url, TOKEN);
    cfg.drain.backoff_base = Duration::from_secs(1);
    cfg.drain.backoff_cap = Duration::from_secs(16);
    cfg.drain.retry_after_cap = Duration::from_secs(120);
    cfg.drain.heartbeat_interval = Duration::from_secs(300);
    cfg.drain.stuck_recheck = Duration::from_secs(3600);
    Lane::start_with_clock(cfg, clock).await
}

/// How long until the lane's scheduled next attempt, by `clock`.
async fn next_attempt_in(lane: &Lane, clock: &ManualClock) -> Duration {
    let next: jiff::Timestamp = lane.status().await["backend"]["next_attempt_at"]
        .as_str()
        .expect("a next attempt is scheduled")
        .parse()
        .expect("a timestamp");
    Duration::try_from(next.duration_since(clock.wall())).unwrap_or(Duration::ZERO)
}

fn start() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_ceilings_double_to_the_cap_with_jitter_inside_and_retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let clock = start();
    let lane = lane_with_clock(dir.path(), &backend, clock.clone()).await;
    let unavailable = || {
        Reply::Status(
            503,
            json!({"code": "down", "message": "maintenance"}),
            vec![],
        )
    };
    backend.script((0..7).map(|_| unavailable()));
    backend.script([Reply::Status(
        429,
        json!({}),
        vec![("retry-after", "90".into())],
    )]);
    let id = Uuid::new_v4().to_string();
    assert_eq!(lane.put(&id, &common::sale()).await.0, 201);

    let ceilings = [1u64, 2, 4, 8, 16, 16, 16];
    for (n, ceiling) in ceilings.iter().enumerate() {
        let failures = n as i64 + 1;
        lane.until("the failure is recorded", || async {
            lane.status().await["backend"]["consecutive_failures"] == failures
        })
        .await;
        let delay = next_attempt_in(&lane, &clock).await;
        assert!(
            delay <= Duration::from_secs(*ceiling),
            "failure {failures}: delay {delay:?} above the ceiling {ceiling}s"
        );
        // Nothing is sent before the delay is over.
        let requests = backend.received().len();
        clock.advance(delay.saturating_sub(Duration::from_millis(1)));
        assert_eq!(backend.received().len(), requests);
        clock.advance(Duration::from_millis(1));
    }
    // The 429 with Retry-After: 90 sets the floor of the next delay.
    lane.until("the 429 is recorded", || async {
        lane.status().await["backend"]["consecutive_failures"] == 8
    })
    .await;
    let delay = next_attempt_in(&lane, &clock).await;
    assert!(
        delay >= Duration::from_secs(90),
        "Retry-After ignored: {delay:?}"
    );
    clock.advance(delay);
    lane.until("posted once the back-end is back", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    let attempts = lane.get(&format!("/v1/sales/{id}")).await.1["attempts"].clone();
    assert_eq!(attempts, 9);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_lane_sends_only_heartbeats_and_does_no_work_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = start();
    let lane = lane_with_clock(dir.path(), &backend, clock.clone()).await;
    let drain = lane.drain.clone().unwrap();
    // The first heartbeat goes out at start.
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_requests(1))
        .await
        .unwrap();
    lane.until("online", || async {
        lane.status().await["lane_state"] == "online"
    })
    .await;
    // Both looks of the first heartbeat (send it; decide to sleep) are done.
    lane.until("asleep after the first heartbeat", || async {
        *drain.rounds().borrow() >= 2
    })
    .await;
    let ticks_at_start = drain.ticks();
    let rounds_at_start = *drain.rounds().borrow();
    for beat in 1..=10usize {
        // Most of an interval passes: nothing at all happens.
        clock.advance(Duration::from_secs(299));
        assert_eq!(backend.received().len(), beat);
        assert_eq!(drain.ticks(), ticks_at_start + 2 * (beat as u64 - 1));
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(60), backend.wait_for_requests(beat + 1))
            .await
            .unwrap();
        // Wait until the drain is asleep again before moving the clock on.
        let target = rounds_at_start + 2 * beat as u64;
        lane.until("asleep after the heartbeat", || async {
            *drain.rounds().borrow() >= target
        })
        .await;
    }
    let received = backend.received();
    assert!(
        received.iter().all(|r| r.path == "/v1/heartbeat"),
        "an idle lane sent more than heartbeats"
    );
    assert_eq!(received.len(), 11);
    // Two looks per heartbeat (send it; decide to sleep), nothing else.
    assert_eq!(
        drain.ticks() - ticks_at_start,
        20,
        "the drain woke up between heartbeats"
    );
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sale_is_rechecked_on_its_own_after_the_recheck_interval() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let clock = start();
    let lane = lane_with_clock(dir.path(), &backend, clock.clone()).await;
    backend.script([Reply::Status(
        422,
        json!({"code": "unknown_sku", "message": "not yet in the catalogue"}),
        vec![],
    )]);
    let id = Uuid::new_v4().to_string();
    lane.put(&id, &common::sale()).await;
    lane.until("stuck", || async { lane.sale_state(&id).await == "stuck" })
        .await;
    let puts = || {
        backend
            .received()
            .iter()
            .filter(|r| r.method == "PUT")
            .count()
    };
    assert_eq!(puts(), 1);
    // Heartbeats come and go; the stuck sale is not re-sent before an hour.
    for _ in 0..11 {
        clock.advance(Duration::from_secs(300));
    }
    clock.advance(Duration::from_secs(299));
    assert_eq!(puts(), 1, "re-sent before the re-check interval");
    clock.advance(Duration::from_secs(1));
    lane.until("re-checked and posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    assert_eq!(puts(), 2);
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_delays_neither_a_retry_nor_a_stuck_recheck_beyond_their_longest_interval()
{
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let clock = start();
    let lane = lane_with_clock(dir.path(), &backend, clock.clone()).await;
    backend.script([
        Reply::Status(503, json!({}), vec![]),
        Reply::Status(
            422,
            json!({"code": "unknown_sku", "message": "not yet"}),
            vec![],
        ),
    ]);
    let id = Uuid::new_v4().to_string();
    lane.put(&id, &common::sale()).await;
    lane.until("the 503 is recorded", || async {
        lane.status().await["backend"]["consecutive_failures"] == 1
    })
    .await;
    // Someone sets the till's clock back a day: the stored schedule now
    // lies a day ahead. The retry still comes within the backoff cap (16 s).
    clock.set_wall("2026-11-21T10:00:00Z".parse().unwrap());
    clock.advance(Duration::from_secs(16));
    lane.until("stuck after the retry", || async {
        lane.sale_state(&id).await == "stuck"
    })
    .await;
    // And the stuck sale's re-check comes within the re-check interval.
    clock.set_wall("2026-11-20T10:00:00Z".parse().unwrap());
    for _ in 0..12 {
        clock.advance(Duration::from_secs(300));
    }
    lane.until("re-checked and posted", || async {
        lane.sale_state(&id).await == "posted"
    })
    .await;
    lane.stop().await;
}

/// A lossy back-end: 12% of requests fail at random (seeded; 503 or 429
/// with `Retry-After: 1`, 500, answers lost after the commit), sales sent
/// by single `PUT`s, so a round often posts some sales and then fails. The
/// clock moves only to each scheduled retry. Every wait must follow the
/// policy: the backoff grows only with rounds that failed without posting
/// anything, and a round that made progress starts it over; the lane stays
/// online throughout (a blip is not an outage); every sale is posted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_lossy_backend_progress_resets_the_backoff_and_the_lane_stays_online() {
    let seed = common::seed("through_a_lossy_backend");
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let clock = start();
    let lane = lane_with_clock(dir.path(), &backend, clock.clone()).await;
    lane.until("online", || async {
        lane.status().await["lane_state"] == "online"
    })
    .await;
    backend.random_faults(seed, 0.12);
    let ids = lane.ring(120).await;
    let mut rounds = lane.drain.as_ref().unwrap().rounds();
    let mut states = std::collections::BTreeSet::new();
    loop {
        let st = lane.status().await;
        states.insert(st["lane_state"].as_str().unwrap_or("?").to_owned());
        if st["counts"]["posted"] == 120 {
            break;
        }
        let next = st["backend"]["next_attempt_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        if let Some(next) = next.filter(|n| *n > clock.wall()) {
            clock.advance(Duration::try_from(next.duration_since(clock.wall())).unwrap());
        }
        // A safety net, not synchronisation: a drain that never finishes
        // another round fails the test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(60), rounds.changed())
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: the drain stopped making rounds"))
            .unwrap();
    }
    let faults = backend.faults_injected();
    lane.stop().await;

    // Rounds from the attempts recorded: (started_at, posted any, failed).
    let conn = rusqlite::Connection::open(dir.path().join(laned::lane::store::DB_FILE)).unwrap();
    let mut st = conn
        .prepare(
            "SELECT started_at, SUM(outcome = 'posted'), SUM(outcome = 'retry')
             FROM attempts GROUP BY started_at ORDER BY started_at",
        )
        .unwrap();
    let rounds: Vec<(jiff::Timestamp, bool, bool)> = st
        .query_map([], |r| {
            let at: String = r.get(0)?;
            Ok((
                at.parse().unwrap(),
                r.get::<_, i64>(1)? > 0,
                r.get::<_, i64>(2)? > 0,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut in_a_row = 0u32;
    let mut waited = Duration::ZERO;
    for pair in rounds.windows(2) {
        let ((at, progress, failed), (next, _, _)) = (pair[0], pair[1]);
        if !failed {
            in_a_row = 0;
            continue;
        }
        in_a_row = if progress { 1 } else { in_a_row + 1 };
        // Full jitter under base × 2^(n-1) (capped at 16 s), or the
        // back-end's Retry-After of 1 s, whichever is longer.
        let ceiling = Duration::from_secs((1u64 << (in_a_row - 1).min(4)).max(1));
        let wait = Duration::try_from(next.duration_since(at)).unwrap();
        waited += wait;
        assert!(
            wait <= ceiling + Duration::from_millis(1),
            "seed {seed}: after a round at {at} (posted some: {progress}, failed rounds in a \
             row: {in_a_row}) the lane waited {wait:?}, over {ceiling:?}; faults {faults:?}"
        );
    }
    assert!(
        !states.contains("offline"),
        "seed {seed}: the lane went offline on a link that works ({states:?}, faults {faults:?})"
    );
    let counts = backend.post_counts();
    assert!(
        ids.iter().all(|id| counts.get(id) == Some(&1)),
        "seed {seed}: a sale was not posted exactly once"
    );
    assert_eq!(
        backend.posted_order(),
        ids,
        "seed {seed}: out of lane order"
    );
    eprintln!(
        "seed {seed}: {} rounds, {waited:?} of backoff, faults {faults:?}",
        rounds.len()
    );
}
