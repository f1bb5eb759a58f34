//! `laned doctor`: every check passes on a healthy lane, and each broken
//! thing is named: a token the back-end refuses, a daemon that is not
//! running, an admin token others can read, a missing database.

use crate::common;

use common::Lane;
use common::salemap::Salemap;
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
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
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
