//! `laned status` reads the lane's database directly: it works beside a
//! running daemon and, what support needs most, when the daemon is down.

mod common;

use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

fn status(dir: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.arg("status")
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("laned status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_database_with_the_daemon_running_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    let http = client();
    for _ in 0..2 {
        let r = http
            .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
            .json(&common::sale())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (code, out, err) = tokio::task::spawn_blocking({
        let d = dir.path().to_owned();
        move || status(&d, true)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let running: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(running["lane_id"], "L03");
    assert_eq!(running["counts"]["pending"], 2);
    assert_eq!(running["pending_amount"]["KES"], 50_000);
    assert_eq!(running["last_receipt_no"]["L03"], 2);

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
    let (code, out, err) = status(dir.path(), true);
    assert_eq!(code, 0, "{err}");
    let stopped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stopped["counts"], running["counts"]);
    assert!(stopped["offline"]["seconds"].is_u64());
    let (code, text, _) = status(dir.path(), false);
    assert_eq!(code, 0);
    assert!(text.contains("pending 2"), "{text}");
    assert!(text.contains("last sync          never"), "{text}");

    // No database there: a clear refusal, exit 1.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = status(empty.path(), true);
    assert_eq!(code, 1);
    assert!(err.contains("no lane database"), "{err}");
}
