//! The README's quick start: `laned demo` runs a lane with an embedded
//! salemap, needs nothing else, and delivers what the till rings.

use crate::common;

use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lane_delivers_a_sale_to_its_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--log-level", "info,laned::lane::drain=debug"])
        .env_remove("RUST_LOG");
    let mut lane = RealLane::spawn_command(cmd).expect("the demo starts");
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
