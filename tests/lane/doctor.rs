//! `laned doctor`: every check passes on a healthy lane, and each broken
//! thing is named: a token the back-end refuses, a daemon that is not
//! running, an admin token others can read, a missing database. And a lane
//! in trouble is never shown as fine: `doctor` and `laned status` exit 6
//! when someone must act and 7 when the lane refuses sales.

use crate::common;

use common::Lane;
use common::backend::{Backend, Reply};
use common::salemap::Salemap;
use laned::common::clock::ManualClock;
use laned::salemap::Lanes;
use serde_json::Value;

const TOKEN: &str = "doctor-token";

fn doctor(dir: &std::path::Path, backend: &str, token: &str) -> (i32, String, String) {
    let out = assert_cmd::Command::new(common::laned_bin())
        .args(["doctor", "--data-dir"])
        .arg(dir)
        .args(["--backend-url", backend])
        .env("LANED_BACKEND_TOKEN", token)
        .env_remove("LANED_CONFIG")
        .env_remove("LANED_BACKEND_TOKEN_FILE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run(dir: &std::path::Path, backend: &str, token: &str) -> (i32, String, String) {
    let (d, b, t) = (dir.to_owned(), backend.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || doctor(&d, &b, &t))
        .await
        .unwrap()
}

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l[6..].starts_with(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_a_healthy_lane_and_names_what_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start(&dir.path().join("salemap.db"), Lanes::single("L03", TOKEN)).await;
    let cfg = common::config_with_backend(&dir.path().join("lane"), &sm.url, TOKEN);
    let lane_dir = cfg.data_dir.clone();
    let lane = Lane::start_with(cfg).await;
    lane.ring(1).await;

    let (code, out, err) = run(&lane_dir, &sm.url, TOKEN).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(line(&out, "database").starts_with("ok"), "{out}");
    assert!(line(&out, "database").contains("integrity check ok"));
    assert!(line(&out, "config").contains("lane L03"), "{out}");
    assert!(line(&out, "daemon").starts_with("ok"), "{out}");
    assert!(line(&out, "daemon").contains("running: laned pid"), "{out}");
    assert!(line(&out, "admin token").starts_with("ok"), "{out}");
    assert!(
        line(&out, "disk").contains("B free for the sales database"),
        "{out}"
    );
    assert!(
        line(&out, "back-end").contains("accepts the lane's token"),
        "{out}"
    );
    assert!(line(&out, "clock").starts_with("ok"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");

    // A token the back-end refuses.
    let (code, out, err) = run(&lane_dir, &sm.url, "wrong").await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("1 check(s) failed"), "{err}");
    assert!(
        line(&out, "back-end").starts_with("FAIL") && out.contains("refuses the lane's token"),
        "{out}"
    );

    // The daemon stops; the admin token becomes readable by others.
    lane.stop().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            lane_dir.join("admin-token"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let (code, out, _) = run(&lane_dir, &sm.url, TOKEN).await;
    assert!(line(&out, "daemon").starts_with("WARN"), "{out}");
    assert!(line(&out, "daemon").contains("not running"), "{out}");
    #[cfg(unix)]
    {
        assert_eq!(code, 1, "{out}");
        assert!(line(&out, "admin token").starts_with("FAIL"), "{out}");
    }
    #[cfg(not(unix))]
    assert_eq!(code, 0, "{out}");

    // The back-end is gone, and the data directory holds no lane.
    sm.stop().await;
    let empty = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::new(common::laned_bin())
        .args(["doctor", "--json", "--lane-id", "L03", "--data-dir"])
        .arg(empty.path())
        .args(["--backend-url", "http://127.0.0.1:9"])
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks: Vec<Value> = doc["checks"].as_array().unwrap().clone();
    let find = |n: &str| {
        checks
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {checks:?}"))
            .clone()
    };
    assert_eq!(find("database")["verdict"], "fail");
    assert!(
        find("database")["detail"]
            .as_str()
            .unwrap()
            .contains("no lane database")
    );
    assert_eq!(find("back-end")["verdict"], "fail");
    assert!(
        find("back-end")["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );
}

/// `laned ARGS --data-dir DIR` with no configuration but these flags.
async fn laned(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let mut cmd = assert_cmd::Command::new(common::laned_bin());
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG")
        .env_remove("LANED_BACKEND_URL")
        .env_remove("LANED_BACKEND_TOKEN_FILE")
        .env("LANED_BACKEND_TOKEN", TOKEN);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_in_trouble_fails_status_and_doctor_with_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let clock = std::sync::Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let mut cfg = common::config_with_backend(dir.path(), &backend.url, TOKEN);
    cfg.drain.backoff_base = std::time::Duration::from_secs(1);
    cfg.drain.backoff_cap = std::time::Duration::from_secs(16);
    let lane = Lane::start_with_clock(cfg, clock.clone()).await;
    lane.until("online", || async {
        lane.status().await["lane_state"] == "online"
    })
    .await;
    let (code, out, err) = laned(&["status"], dir.path()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Lane L03: Connected"), "{out}");
    assert!(
        out.contains("\ndaemon             running: laned pid"),
        "{out}"
    );

    // Head office refuses one sale: someone must act, sales go on.
    let stuck = uuid::Uuid::new_v4().to_string();
    backend.script([Reply::RefuseItems(vec![(
        stuck.clone(),
        422,
        "unknown_sku",
    )])]);
    assert_eq!(lane.put(&stuck, &common::sale()).await.0, 201);
    lane.until("stuck", || async {
        lane.sale_state(&stuck).await == "stuck"
    })
    .await;
    let (code, out, err) = laned(&["status"], dir.path()).await;
    assert_eq!(code, 6, "{out}{err}");
    assert!(
        out.starts_with("Lane L03: 1 sale needs attention\n"),
        "{out}"
    );
    assert!(err.contains("in need of attention (stuck_sales)"), "{err}");
    let (code, out, _) = laned(&["status", "--json"], dir.path()).await;
    assert_eq!(code, 6);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["verdict"], "attention");
    assert_eq!(json["troubles"][0]["code"], "stuck_sales");
    assert_eq!(json["daemon"]["running"], true);
    // doctor was given no back-end: it checks the running daemon's, says
    // that its own configuration differs, and fails the lane check.
    let (code, out, _) = laned(&["doctor"], dir.path()).await;
    assert_eq!(code, 6, "{out}");
    assert!(line(&out, "config").starts_with("WARN"), "{out}");
    assert!(
        line(&out, "config").contains("the running daemon delivers to"),
        "{out}"
    );
    assert!(
        line(&out, "back-end").starts_with("ok") && line(&out, "back-end").contains(&backend.url),
        "{out}"
    );
    assert!(
        line(&out, "lane").starts_with("FAIL") && line(&out, "lane").contains("stuck_sales"),
        "{out}"
    );
    let (_, out, _) = laned(&["doctor", "--json"], dir.path()).await;
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["lane_verdict"], "attention");

    // Head office goes away for 25 h: the lane refuses sales.
    backend.set_down(true);
    lane.ring(1).await;
    lane.until("the failure is recorded", || async {
        !lane.status().await["backend"]["last_error"].is_null()
    })
    .await;
    clock.advance(std::time::Duration::from_secs(25 * 3600));
    lane.until("suspended", || async {
        lane.status().await["lane_state"] == "suspended"
    })
    .await;
    let (code, out, err) = laned(&["doctor"], dir.path()).await;
    assert_eq!(code, 7, "{out}{err}");
    assert!(
        out.contains("FAIL  lane           lane_suspended: Sales stopped"),
        "{out}"
    );
    assert!(
        err.contains("refusing new sales (lane_suspended, stuck_sales)"),
        "{err}"
    );
    lane.stop().await;
    // The daemon is down: status judges from the database, with the
    // configuration it is given (here: the back-end, the default limits).
    let (code, out, _) = laned(&["status", "--backend-url", &backend.url], dir.path()).await;
    assert_eq!(code, 7, "{out}");
    assert!(out.starts_with("Lane L03: Sales stopped"), "{out}");
    assert!(out.contains("\ndaemon             not running"), "{out}");
}
