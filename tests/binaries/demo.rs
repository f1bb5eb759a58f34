//! The README's quick start: `laned demo` runs a lane with an embedded
//! salemap, needs nothing else, and delivers what the till rings; its first
//! hour: the sale head office refuses becomes a stuck sale that the
//! printed support commands find, and Enter stops and starts head office.

use crate::common;

use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

/// `laned demo` on `dir`, on a free port, logging each delivery round.
fn demo(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--log-level", "info,laned::lane::drain=debug"])
        .env_remove("RUST_LOG");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lane_delivers_a_sale_to_its_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = RealLane::spawn_command(demo(dir.path())).expect("the demo starts");
    // The example sale it writes is accepted as is.
    let example = std::fs::read_to_string(dir.path().join("example-sale.json")).unwrap();
    let http = client();
    let id = Uuid::new_v4();
    let r = http
        .put(format!("{}/v1/sales/{id}", lane.base))
        .header("Content-Type", "application/json")
        .body(example)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    tokio::task::block_in_place(|| lane.wait_for_log("delivery round recorded", 1));
    let sale: Value = common::get_json(&http, &format!("{}/v1/sales/{id}", lane.base)).await;
    assert_eq!(sale["state"], "posted", "{sale}");
    assert_eq!(sale["doc_no"], "L01/00000001");
    let status: Value = common::get_json(&http, &format!("{}/v1/status", lane.base)).await;
    assert_eq!(status["lane_state"], "online", "{status}");
    #[cfg(unix)]
    assert_eq!(lane.terminate().code(), Some(0), "{}", lane.stderr());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_a_stuck_sale_and_stops_head_office_on_enter() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut lane, mut stdin) =
        RealLane::spawn_with_stdin(demo(dir.path())).expect("the demo starts");
    let http = client();
    let ring = |file: &'static str| {
        let (http, base, path) = (http.clone(), lane.base.clone(), dir.path().join(file));
        async move {
            let id = Uuid::new_v4();
            let r = http
                .put(format!("{base}/v1/sales/{id}"))
                .header("Content-Type", "application/json")
                .body(std::fs::read_to_string(path).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            id
        }
    };
    // The sale head office refuses: stuck, and the printed commands on the
    // printed data directory find it.
    let refused = ring("refused-sale.json").await;
    tokio::task::block_in_place(|| lane.wait_for_log("delivery round recorded", 1));
    let sale: Value = common::get_json(&http, &format!("{}/v1/sales/{refused}", lane.base)).await;
    assert_eq!(sale["state"], "stuck", "{sale}");
    assert_eq!(sale["last_error"]["code"], "unknown_sku", "{sale}");
    let out = std::process::Command::new(common::laned_bin())
        .args(["sales", "list", "--state", "stuck", "--data-dir"])
        .arg(dir.path().join("lane"))
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&refused.to_string()));
    // Head office's token is there for curl, owner-only.
    let token = dir.path().join("backend-token");
    assert_eq!(std::fs::read_to_string(&token).unwrap().trim().len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Enter: head office stops; a sale waits.
    stdin.write_all(b"\n").unwrap();
    tokio::task::block_in_place(|| lane.wait_for_log("demo: head office stopped", 1));
    let waiting = ring("example-sale.json").await;
    tokio::task::block_in_place(|| lane.wait_for_log("delivery failed", 1));
    let sale: Value = common::get_json(&http, &format!("{}/v1/sales/{waiting}", lane.base)).await;
    assert_eq!(sale["state"], "pending", "{sale}");
    // Enter again: head office is back on the same address and the sale goes.
    stdin.write_all(b"\n").unwrap();
    tokio::task::block_in_place(|| lane.wait_for_log("demo: head office started again", 1));
    let http2 = http.clone();
    let sync = http2
        .post(format!("{}/v1/status/sync", lane.base))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), 202);
    // The round that posts it (the first round posted nothing).
    tokio::task::block_in_place(|| lane.wait_for_log("posted=1", 1));
    let sale: Value = common::get_json(&http, &format!("{}/v1/sales/{waiting}", lane.base)).await;
    assert_eq!(sale["state"], "posted", "{sale}");
    assert_eq!(lane.terminate().code(), Some(0), "{}", lane.stderr());
}
