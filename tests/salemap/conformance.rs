//! The conformance kit: `salemap conformance` passes against salemap on
//! both stores, and fails, naming what broke, against a back-end that
//! posts every request anew.

use crate::common;

use axum::Router;
use axum::routing::{get, put};
use common::RealLane;
use laned::salemap::conformance;
use laned::salemap::{Database, Lanes};
use serde_json::json;

const TOKEN: &str = "conformance-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_against_the_salemap_binary() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("lanes.toml");
    std::fs::write(
        &tokens,
        format!(
            "[lanes]\nL03 = \"{}\"\n",
            laned::salemap::tokens::hash(TOKEN)
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(common::salemap_bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--lane-tokens"])
        .arg(&tokens)
        .arg("--data-dir")
        .arg(dir.path());
    let server = RealLane::spawn_command(cmd).expect("salemap starts");
    let out = tokio::task::spawn_blocking({
        let url = server.base.clone();
        move || {
            std::process::Command::new(common::salemap_bin())
                .args(["conformance", "--url", &url, "--lane", "L03"])
                .env("SALEMAP_CONFORMANCE_TOKEN", TOKEN)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("all 13 checks passed"), "{table}");
    assert!(!table.contains(TOKEN), "the token was printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_against_salemap_on_postgres() {
    let Some(pg) = common::pg::database().await else {
        return;
    };
    let db = Database::Postgres {
        url: pg.url.clone(),
        lock_timeout: laned::salemap::DEFAULT_LOCK_TIMEOUT,
    };
    let sm = common::salemap::Salemap::start_on(db, Lanes::single("L03", TOKEN)).await;
    let report = conformance::run(&sm.url, TOKEN, "L03").await.unwrap();
    assert!(report.passed(), "{}", report.table());
    sm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_fails_a_backend_that_posts_every_repeat_anew() {
    // Answers 201 with a new document to every PUT: the classic bug. Its
    // heartbeat ignores lane_id and answers with every series it was sent.
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let series = std::sync::Arc::new(std::sync::Mutex::new(serde_json::Map::new()));
    let seen = series.clone();
    let app = Router::new()
        .route(
            "/v1/sales/{id}",
            put(
                move |axum::extract::Path(id): axum::extract::Path<String>, body: String| {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    if let Some(s) = v["series"].as_str() {
                        seen.lock()
                            .unwrap()
                            .insert(s.to_owned(), v["receipt_no"].clone());
                    }
                    async move {
                        (
                            axum::http::StatusCode::CREATED,
                            axum::Json(json!({"transaction_id": id, "doc_no": format!("D{n}"),
                                          "posted_at": "2026-11-22T12:00:00Z"})),
                        )
                    }
                },
            ),
        )
        .route(
            "/v1/heartbeat",
            get(move || {
                let all = series.lock().unwrap().clone();
                async move {
                    axum::Json(
                        json!({"server_time": "2026-11-22T12:00:00Z", "last_receipt_no": all}),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let report = conformance::run(&url, TOKEN, "L03").await.unwrap();
    assert!(!report.passed());
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect();
    for must in [
        "post then replay",
        "concurrent duplicates",
        "payload mismatch",
        "token required",
        "heartbeat names the lane",
        // It has no closings route.
        "day closing",
    ] {
        assert!(
            failed.contains(&must),
            "{must} not failed:\n{}",
            report.table()
        );
    }
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "heartbeat" && c.passed)
    );
    assert!(report.table().contains("FAILED"));
}
