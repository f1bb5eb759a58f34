//! Configuration layers on the real binary: file, then `LANED_*`
//! environment, then flags; unknown keys refused.

use crate::common;

use std::process::{Command, Stdio};

use common::{RealLane, client};

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("laned.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn lane_id_of(lane: &RealLane) -> String {
    let s = common::get_json(&client(), &format!("{}/v1/status", lane.base)).await;
    format!(
        "{}/{}",
        s["lane_id"].as_str().unwrap(),
        s["series"].as_str().unwrap()
    )
}

/// Starts `laned serve --config FILE` with `env` and `flags`; no --lane-id
/// unless the flags give one.
fn spawn(config: &std::path::Path, env: &[(&str, &str)], flags: &[&str]) -> RealLane {
    let mut cmd = Command::new(common::laned_bin());
    cmd.arg("serve").arg("--config").arg(config).args(flags);
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in [
        "LANED_LANE_ID",
        "LANED_SERIES",
        "LANED_DATA_DIR",
        "LANED_LISTEN",
    ] {
        if !env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    RealLane::spawn_command(cmd).expect("laned starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_then_env_then_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = write_config(
        tmp.path(),
        &format!(
            "lane_id = \"FILE\"\nseries = \"SF\"\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            data.to_str().unwrap()
        ),
    );
    let lane = spawn(&cfg, &[], &[]);
    assert_eq!(lane_id_of(&lane).await, "FILE/SF");
    drop(lane);
    // The database now belongs to lane FILE; use fresh data dirs below.
    let env_dir = tmp.path().join("env");
    let lane = spawn(
        &cfg,
        &[
            ("LANED_LANE_ID", "ENV"),
            ("LANED_DATA_DIR", env_dir.to_str().unwrap()),
        ],
        &[],
    );
    assert_eq!(lane_id_of(&lane).await, "ENV/SF", "env overrides the file");
    drop(lane);
    let flag_dir = tmp.path().join("flag");
    let lane = spawn(
        &cfg,
        &[("LANED_LANE_ID", "ENV")],
        &[
            "--lane-id",
            "FLAG",
            "--series",
            "S2",
            "--data-dir",
            flag_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        lane_id_of(&lane).await,
        "FLAG/S2",
        "flags override env and file"
    );
}

#[test]
fn unknown_config_keys_are_refused_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(
        tmp.path(),
        "lane_id = \"L03\"\nlisten_address = \"127.0.0.1:0\"\n",
    );
    let out = Command::new(common::laned_bin())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_address"), "{err}");
}

#[test]
fn a_missing_lane_id_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::laned_bin())
        .args(["serve", "--data-dir"])
        .arg(tmp.path())
        .env_remove("LANED_LANE_ID")
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lane-id"));
}

#[test]
fn a_plain_http_backend_on_another_machine_is_a_configuration_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::laned_bin())
        .args(["serve", "--lane-id", "L03", "--listen", "127.0.0.1:0"])
        .args(["--backend-url", "http://erp.example.com/pos", "--data-dir"])
        .arg(tmp.path())
        .env_remove("LANED_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("https://"), "{err}");
}

/// A ceiling alone brings its warning (and heartbeat) with it; only a
/// contradiction with something written is refused, and the message says
/// which values met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceiling_alone_brings_its_warning_and_only_written_contradictions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), "");
    let data = tmp.path().join("data");
    let base = [
        "--lane-id",
        "L03",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let lane = spawn(&cfg, &[], &[&base[..], &["--sync-ceiling", "12h"]].concat());
    let s = common::get_json(&client(), &format!("{}/v1/status", lane.base)).await;
    let limits = &s["ceiling"]["limits"];
    assert_eq!(limits["sync_ceiling_seconds"], 12 * 3600, "{s}");
    assert_eq!(limits["warn_after_seconds"], 10 * 3600, "{s}");
    drop(lane);

    let out = Command::new(common::laned_bin())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .args(base)
        .args(["--warn-after", "30h"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warn_after") && err.contains("30h") && err.contains("24h, the default"),
        "{err}"
    );
}
