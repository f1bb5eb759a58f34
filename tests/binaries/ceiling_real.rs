//! The sync ceiling in the real binary, in real time: a back-end that is
//! down, a ceiling of two seconds, sales refused with `503 lane_suspended`
//! (also after `kill -9` and a restart), then accepted once the back-end
//! is up. State changes are logged once each, not at every look.

use crate::common;

use common::backend::Backend;
use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

/// `laned serve` on `dir` delivering to `backend_url`, with the ceiling
/// settings given and quick heartbeats and retries.
fn command(dir: &std::path::Path, backend_url: &str, ceiling: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "L03"])
        .args(["--backend-url", backend_url])
        .args(ceiling)
        .args(["--heartbeat-interval", "500ms"])
        .args(["--backoff-base", "100ms", "--backoff-cap", "200ms"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_BACKEND_TOKEN")
        .env_remove("LANED_CONFIG");
    cmd
}

fn spawn(dir: &std::path::Path, backend_url: &str) -> RealLane {
    let cmd = command(
        dir,
        backend_url,
        &["--sync-ceiling", "2s", "--warn-after", "1s"],
    );
    RealLane::spawn_command(cmd).expect("laned starts")
}

/// Waits (on the log, not the clock) for a line; blocking is fine on the
/// multi-threaded runtime.
fn wait_log(lane: &RealLane, needle: &str, times: usize) {
    tokio::task::block_in_place(|| lane.wait_for_log(needle, times));
}

async fn put(http: &reqwest::Client, base: &str) -> (u16, Option<String>, Value) {
    let r = http
        .put(format!("{base}/v1/sales/{}", Uuid::new_v4()))
        .json(&common::sale())
        .send()
        .await
        .expect("PUT");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (r.status().as_u16(), retry, r.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_offline_past_its_ceiling_refuses_sales_across_kill_9_until_the_backend_answers() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(None).await;
    backend.set_down(true);
    let http = client();

    let mut lane = spawn(dir.path(), &backend.url);
    wait_log(&lane, "lane suspended", 1);
    for _ in 0..3 {
        let (code, retry, body) = put(&http, &lane.base).await;
        assert_eq!((code, retry.as_deref()), (503, Some("60")), "{body}");
        assert_eq!(body["code"], "lane_suspended");
    }
    let status: Value = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(status["lane_state"], "suspended", "{status}");
    lane.kill9();
    let logs = lane.stderr();
    for state in ["lane offline", "lane warning", "lane suspended"] {
        assert_eq!(logs.matches(state).count(), 1, "{state} in:\n{logs}");
    }

    // Restarting does not reset the offline time: suspended at once.
    let mut lane = spawn(dir.path(), &backend.url);
    let (code, _, body) = put(&http, &lane.base).await;
    assert_eq!(code, 503, "{body}");

    backend.set_down(false);
    wait_log(&lane, "lane online", 1);
    let (code, _, body) = put(&http, &lane.base).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["lane_state"], "online");
    let left = body["ceiling_remaining_seconds"].as_u64();
    assert!(left.is_some_and(|s| s <= 2), "{body}");
    #[cfg(unix)]
    assert_eq!(lane.terminate().code(), Some(0));
    #[cfg(not(unix))]
    lane.kill9();
}

/// `laned serve` with its wall clock `offset` seconds from the real one
/// (libfaketime), a back-end that is down, and the ceiling given.
fn spawn_faked(
    dir: &std::path::Path,
    backend_url: &str,
    lib: &std::path::Path,
    offset: i64,
    ceiling: &[&str],
) -> RealLane {
    let mut cmd = command(dir, backend_url, ceiling);
    common::faketime::offset(&mut cmd, lib, offset);
    RealLane::spawn_command(cmd).expect("laned starts")
}

async fn offline_seconds(http: &reqwest::Client, lane: &RealLane) -> (u64, Value) {
    let status: Value = common::get_json(http, &format!("{}/v1/status", lane.base)).await;
    let offline = status["ceiling"]["offline_seconds"]
        .as_u64()
        .expect("offline_seconds");
    (offline, status)
}

/// The attack that once worked: `kill -9`, wall clock set back a day,
/// start again, over and over. Every restart used to count the downtime as
/// nothing and lose the time since the last checkpoint, so a lane offline
/// for longer than its ceiling kept selling. Real time passes here, and the
/// lane must count it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_a_clock_set_back_before_each_restart_do_not_stretch_the_ceiling() {
    let Some(lib) = common::faketime::preload("this test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(None).await;
    backend.set_down(true);
    let http = client();
    let ceiling = ["--sync-ceiling", "3s", "--warn-after", "1s"];
    let began = std::time::Instant::now();
    let mut offset = 0;
    let mut restarts = 0;
    // Each run lasts until the lane has logged its state, a fraction of a
    // second; the loop ends once more real time than the ceiling has passed.
    while began.elapsed() < std::time::Duration::from_secs(4) {
        let mut lane = spawn_faked(dir.path(), &backend.url, &lib, offset, &ceiling);
        wait_log(&lane, "lane ", 1);
        lane.kill9();
        offset -= 86_400;
        restarts += 1;
        assert!(restarts < 200, "the loop never reached the ceiling");
    }
    let lane = spawn_faked(dir.path(), &backend.url, &lib, offset, &ceiling);
    let (code, _, body) = put(&http, &lane.base).await;
    let (offline, status) = offline_seconds(&http, &lane).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (503, Some("lane_suspended")),
        "after {restarts} kill -9s with the clock set back a day each time, {:?} of real \
         time offline counted as {offline} s: {body}\n{status}",
        began.elapsed()
    );
    assert!(offline >= 3, "{status}");
}

/// Random runs of sales, each ended by a clean stop or a `kill -9`, with the
/// wall clock moved back (a minute to three days) or forward (up to five
/// seconds) before each start,
/// from a printed seed: the offline time the lane counts never falls behind
/// the real time that has passed since it was first started with its
/// back-end down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_stops_kills_and_clock_moves_never_shorten_the_counted_offline_time() {
    use rand::{RngExt, SeedableRng};
    let Some(lib) = common::faketime::preload("this test") else {
        return;
    };
    let seed = common::seed("random_stops_kills_and_clock_moves");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(None).await;
    backend.set_down(true);
    let http = client();
    let ceiling = ["--sync-ceiling", "1h", "--warn-after", "30m"];
    let began = std::time::Instant::now();
    let mut offset: i64 = 0;
    let mut history = vec![];
    // At each status read: real time, counted offline seconds, and the sum
    // of forward clock moves so far.
    let mut reads: Vec<(std::time::Duration, u64, i64)> = vec![];
    let mut forward: i64 = 0;
    for cycle in 0..12 {
        let mut lane = spawn_faked(dir.path(), &backend.url, &lib, offset, &ceiling);
        wait_log(&lane, "lane ", 1);
        let (offline, status) = offline_seconds(&http, &lane).await;
        let real = began.elapsed();
        // Between any two reads the back-end stayed down, so the counted
        // time grew at least by the real time between them plus the clock's
        // forward moves (each makes the lane stricter by as much); a clock
        // moved back takes nothing away. Whole seconds: one of slack for
        // the rounding.
        for (j, (real_j, offline_j, forward_j)) in reads.iter().enumerate() {
            let owed = (real - *real_j).as_secs() + u64::try_from(forward - forward_j).unwrap();
            assert!(
                offline + 1 >= offline_j + owed,
                "seed {seed}: between cycles {j} and {cycle} the lane owed {owed} s \
                 (real time and forward moves) but its counted offline time went from \
                 {offline_j} s to {offline} s, through {:?}\n{status}",
                &history[j..]
            );
        }
        reads.push((real, offline, forward));
        // The till sells for a random while (real time must pass for the
        // lane to count it).
        let run = std::time::Duration::from_millis(rng.random_range(100..600));
        let sold = std::time::Instant::now();
        while sold.elapsed() < run {
            assert_eq!(put(&http, &lane.base).await.0, 201, "seed {seed}");
        }
        let stop = if rng.random_bool(0.6) {
            lane.kill9();
            "kill -9"
        } else {
            assert_eq!(lane.terminate().code(), Some(0));
            "SIGTERM"
        };
        let moved = if rng.random_bool(0.7) {
            -rng.random_range(60..3 * 86_400)
        } else {
            rng.random_range(0..=5)
        };
        offset += moved;
        forward += moved.max(0);
        history.push(format!("{stop}, clock {moved:+} s"));
    }
}
