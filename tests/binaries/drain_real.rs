//! The drain in the real binary: `kill -9` in the middle of a batch, and
//! secrets that never leak.

use crate::common;

use std::time::Duration;

use common::backend::{Backend, Reply};
use common::{RealLane, client, sale_with};
use serde_json::Value;
use uuid::Uuid;

const TOKEN: &str = "s3cr3t-lane-token-9c1d";

/// `laned serve` for lane L03 on `dir`, delivering to `backend_url`.
fn serve_command(dir: &std::path::Path, backend_url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "L03"])
        .args(["--backend-url", backend_url, "--data-dir"])
        .arg(dir)
        .env_remove("LANED_BACKEND_TOKEN")
        .env_remove("LANED_CONFIG");
    cmd
}

fn spawn(dir: &std::path::Path, backend_url: &str, token: &str, extra: &[&str]) -> RealLane {
    let mut cmd = serve_command(dir, backend_url);
    cmd.args(extra).env("LANED_BACKEND_TOKEN", token);
    RealLane::spawn_command(cmd).expect("laned starts")
}

async fn put(http: &reqwest::Client, base: &str, i: usize) -> String {
    let id = Uuid::new_v4().to_string();
    let r = http
        .put(format!("{base}/v1/sales/{id}"))
        .json(&sale_with(&format!("SKU{i}"), 1, 100 + i as i64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_restart_posts_every_sale_once_in_lane_order() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let http = client();
    // Ring the backlog with no back-end, so the first delivery is a full batch.
    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    let mut ids = vec![];
    for i in 0..120 {
        ids.push(put(&http, &lane.base, i).await);
    }
    drop(lane);

    // The back-end commits the first batch of 50 and never answers; the
    // daemon is killed while it waits.
    backend.script([Reply::CommitThenHang]);
    let mut lane = spawn(dir.path(), &backend.url, TOKEN, &["--batch-size", "50"]);
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_posted(50))
        .await
        .expect("the first batch reaches the back-end");
    lane.kill9();

    let lane = spawn(dir.path(), &backend.url, TOKEN, &["--batch-size", "50"]);
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_posted(120))
        .await
        .expect("everything reaches the back-end after the restart");
    // One more sale: the drain sends it only after recording everything
    // before it, so once it arrives the lane's records are complete.
    let last = put(&http, &lane.base, 999).await;
    ids.push(last);
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_posted(121))
        .await
        .expect("the last sale arrives");

    assert_eq!(
        backend.posted_order(),
        ids,
        "the back-end saw sales out of lane order"
    );
    assert!(
        backend.post_counts().values().all(|n| *n == 1),
        "a sale was posted twice"
    );
    let batch_requests: Vec<_> = backend
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/sales:batch")
        .collect();
    assert_eq!(
        batch_requests[0].body, batch_requests[1].body,
        "the interrupted batch was not resent byte for byte"
    );
    let batches: Vec<Vec<String>> = batch_requests.iter().map(|r| r.ids()).collect();
    // The batch that was in flight at the kill was sent again, unchanged.
    assert_eq!(
        batches[0], batches[1],
        "the interrupted batch was not resent as it was"
    );
    let status: Value = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert!(
        status["counts"]["posted"].as_i64().unwrap() >= 120,
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_end_token_never_appears_in_logs_status_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    // The back-end wants another token: every request fails with 401, and
    // the URL carries credentials that must not be shown either.
    let backend = Backend::start(Some("the-right-one")).await;
    let url = backend.url.replace("http://", "http://ops:p4ssw0rd@");
    // A short heartbeat: a paused lane probes the link once per interval,
    // and a probe is only sent after the previous answer was recorded.
    let lane = spawn(
        dir.path(),
        &url,
        TOKEN,
        &["--log-level", "debug", "--heartbeat-interval", "1s"],
    );
    let http = client();
    let id = put(&http, &lane.base, 1).await;
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_requests(3))
        .await
        .expect("the lane keeps probing the back-end");
    let status: Value = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(
        status["backend"]["fault"]["code"], "unauthorized",
        "{status}"
    );
    let sale: Value = common::get_json(&http, &format!("{}/v1/sales/{id}", lane.base)).await;
    #[cfg(unix)]
    common::sigterm(&lane.child);
    let mut lane = lane;
    lane.wait_exit();
    let logs = lane.stderr();
    for (what, text) in [
        ("logs", logs.as_str()),
        ("status", &status.to_string()),
        ("sale", &sale.to_string()),
    ] {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
        assert!(
            !text.contains("p4ssw0rd"),
            "the URL password is in the {what}"
        );
    }
    assert!(
        status["backend"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    assert!(
        logs.contains("unauthorized") || logs.contains("refuses this lane"),
        "the fault is not logged: {logs}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_a_fixed_token_file_and_delivery_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("backend-token");
    std::fs::write(&token_file, "an-old-token\n").unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let mut cmd = serve_command(&dir.path().join("data"), &backend.url);
    cmd.arg("--backend-token-file").arg(&token_file);
    let lane = RealLane::spawn_command(cmd).expect("starts");
    let http = client();
    let id = put(&http, &lane.base, 7).await;
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_requests(1))
        .await
        .unwrap();
    assert!(backend.posted_order().is_empty());

    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    common::sighup(&lane.child);
    tokio::time::timeout(Duration::from_secs(60), backend.wait_for_posted(1))
        .await
        .expect("delivery resumes after SIGHUP");
    assert_eq!(backend.posted_order(), [id]);
    lane.wait_for_log("back-end token reloaded", 1);
}
