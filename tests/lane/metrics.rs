//! `/metrics`: what operators scrape. The figures agree with what
//! happened: sales recorded and posted, attempts by outcome, sales per
//! state, the lane state, the ingest latency histogram.

use crate::common;

use common::Lane;
use common::backend::{Backend, Reply};
use serde_json::json;

const TOKEN: &str = "metrics-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_lane_did() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    backend.without_batch();
    let mut cfg = common::config_with_backend(dir.path(), &backend.url, TOKEN);
    cfg.drain.backoff_base = std::time::Duration::from_millis(10);
    cfg.drain.backoff_cap = std::time::Duration::from_millis(10);
    let lane = Lane::start_with(cfg).await;
    // The first PUT fails once (retried), then three are posted.
    backend.script([Reply::Status(503, json!({}), vec![])]);
    lane.ring(3).await;
    lane.until("three posted", || async {
        lane.status().await["counts"]["posted"] == 3
    })
    .await;

    let r = lane
        .http
        .get(format!("{}/metrics", lane.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let text = r.text().await.unwrap();
    for line in [
        "laned_sales_recorded_total 3",
        "laned_sales_posted_total 3",
        "laned_drain_attempts_total{outcome=\"posted\"} 3",
        "laned_drain_attempts_total{outcome=\"retry\"} 1",
        "laned_sales{state=\"posted\"} 3",
        "laned_sales{state=\"pending\"} 0",
        "laned_lane_state{state=\"online\"} 1",
        "laned_lane_state{state=\"suspended\"} 0",
        "laned_ingest_latency_seconds_count 3",
        "laned_oldest_pending_age_seconds 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.trim_end().ends_with("# EOF"));
    lane.stop().await;
}
