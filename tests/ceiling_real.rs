//! The sync ceiling in the real binary, in real time: a back-end that is
//! down, a ceiling of two seconds, sales refused with `503 lane_suspended`
//! (also after `kill -9` and a restart), then accepted once the back-end
//! is up. State changes are logged once each, not at every look.

mod common;

use common::backend::Backend;
use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

fn spawn(dir: &std::path::Path, backend_url: &str) -> RealLane {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "L03"])
        .args(["--backend-url", backend_url])
        .args(["--sync-ceiling", "2s", "--warn-after", "1s"])
        .args(["--heartbeat-interval", "500ms"])
        .args(["--backoff-base", "100ms", "--backoff-cap", "200ms"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_BACKEND_TOKEN")
        .env_remove("LANED_CONFIG");
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
    {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &lane.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(lane.wait_exit().code(), Some(0));
    }
    #[cfg(not(unix))]
    lane.kill9();
}
