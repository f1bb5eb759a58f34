//! A fuzzer nobody here wrote: schemathesis, from PyPI, driven by the till
//! API's OpenAPI document (`docs/openapi/till-api.json`) against the real
//! `laned`, delivering to a real salemap. It must find no `5xx`, only
//! documented statuses, answers that match their schemas, and input the
//! document forbids refused; afterwards the lane's receipt numbers are still
//! exactly 1..n, every sale it took is posted once, and neither log has a
//! panic.
//!
//! Without schemathesis (`st`) the test says so and skips, unless
//! `LANED_REQUIRE_SCHEMATHESIS=1` (CI, which installs it), where it fails.
//! `LANED_SCHEMATHESIS` names the `st` to run.

use std::path::PathBuf;
use std::time::Duration;

use laned::salemap::Database;

use crate::cluster::free_port;
use crate::{checker, common, drained, laned, proxy, salemap, scale};

/// The schemathesis command, if there is one.
fn schemathesis() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LANED_SCHEMATHESIS").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/laned/venv/bin/st")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("st"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        assert!(
            std::env::var("LANED_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "LANED_REQUIRE_SCHEMATHESIS=1 but schemathesis was not found \
             (pip install schemathesis, or set LANED_SCHEMATHESIS)"
        );
        eprintln!(
            "SKIPPED the schemathesis fuzz: no `st` on this machine (pip install schemathesis)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_and_the_receipts_stay_one_to_n() {
    let Some(st) = schemathesis() else {
        return;
    };
    // The run's seed, cut to a size schemathesis takes; `LANED_SEED` with
    // the printed run seed replays it.
    let seed = common::seed("schemathesis") % (1 << 40);
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    let (lane_port, backend_port) = (free_port(), free_port());
    let mut backend = salemap(dir.path(), &db, backend_port);
    backend.start(None);
    // No faults: the proxy only counts.
    let proxy = proxy::Proxy::start(([127, 0, 0, 1], backend_port).into(), seed).await;
    let lane_dir = dir.path().join("lane");
    let mut lane = laned(&lane_dir, lane_port, &format!("http://{}", proxy.addr), 100);
    lane.start(None);
    let base = format!("http://127.0.0.1:{lane_port}");
    let admin = std::fs::read_to_string(lane_dir.join("admin-token")).expect("admin token");
    let doc = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi/till-api.json");
    let report = dir.path().join("schemathesis.xml");
    let examples = (25 * scale).to_string();
    let mut cmd = std::process::Command::new(&st);
    cmd.args(["run", doc, "--url", &base])
        .args(["--checks", "all"])
        // Not applicable: the till API deletes nothing (use_after_free,
        // ensure_resource_availability), and a sale that fits the schema
        // may still break a business rule the schema cannot state (the
        // lines must add up to the total): 422, documented.
        .args([
            "--exclude-checks",
            "use_after_free,ensure_resource_availability,positive_data_acceptance",
        ])
        .args(["--max-examples", &examples, "--seed", &seed.to_string()])
        .args(["--workers", "1", "--no-color", "--request-timeout", "15"])
        .args(["--generation-database", "none"])
        .args(["--suppress-health-check", "all"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", admin.trim()))
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        // Its own files (.schemathesis/) go to the run's directory.
        .current_dir(dir.path());
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("schemathesis thread")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let junit = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        out.status.success(),
        "seed {seed}: schemathesis found problems ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    let drain = drained(&base, Duration::from_secs(60)).await;
    lane.stop();
    backend.stop();

    let (sales, lane_integrity) = checker::lane(&lane_dir);
    let (docs, backend_integrity) = checker::backend(&db).await;
    let mut numbers: Vec<i64> = sales.iter().map(|s| s.receipt_no).collect();
    numbers.sort_unstable();
    let one_to_n = numbers.iter().enumerate().all(|(i, n)| *n == i as i64 + 1);
    let posted = sales.iter().filter(|s| s.state == "posted").count();
    // schemathesis's own summary, as it printed it.
    let summary = stdout
        .split_once("SUMMARY")
        .map_or("", |(_, rest)| rest)
        .trim_matches(|c: char| c == '=' || c.is_whitespace());
    println!(
        "schemathesis against laned, seed {seed}, scale {scale} (--max-examples {examples})\n  \
         {}\n  test cases in the report: {}\n  sales taken: {}, receipts 1..n: {one_to_n}, \
         posted: {posted}, documents at the back-end: {}; drained {drain:.1?}\n  \
         integrity_check: lane {lane_integrity}, salemap {}",
        summary.replace('\n', "\n  "),
        junit.matches("<testcase").count(),
        sales.len(),
        docs.len(),
        backend_integrity.as_deref().unwrap_or("?")
    );
    assert!(
        one_to_n,
        "seed {seed}: receipt numbers are not 1..n: {numbers:?}"
    );
    assert_eq!(
        posted,
        sales.len(),
        "seed {seed}: not every sale was posted"
    );
    assert_eq!(
        docs.len(),
        sales.len(),
        "seed {seed}: the back-end holds other sales"
    );
    assert_eq!(lane_integrity, "ok");
    assert_eq!(backend_integrity.as_deref(), Some("ok"));
    for (who, log) in [("laned", lane.logs()), ("salemap", backend.logs())] {
        assert!(
            !log.contains("panicked"),
            "seed {seed}: {who} panicked:\n{log}"
        );
    }
}
