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
use crate::{Rig, Setup, checker, common, drained, salemap, scale};

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
        common::skipped(
            "the schemathesis fuzz",
            "no `st` on this machine (pip install schemathesis, or set LANED_SCHEMATHESIS)",
            "LANED_REQUIRE_SCHEMATHESIS",
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
    let lane_dir = dir.path().join("lane");
    // No faults: the proxy only counts.
    let Rig {
        mut backend,
        mut lane,
        base,
        ..
    } = Rig::start(dir.path(), &db, &lane_dir, seed, 100, Setup::default()).await;
    let admin = std::fs::read_to_string(lane_dir.join("admin-token")).expect("admin token");
    let summary = tokio::task::block_in_place(|| {
        run(
            &st,
            "till-api.json",
            &base,
            admin.trim(),
            seed,
            scale,
            dir.path(),
        )
    });
    let drain = drained(&base, Duration::from_secs(60), &[&lane, &backend]).await;
    lane.stop();
    backend.stop();

    let (sales, lane_integrity) = checker::lane(&lane_dir);
    let (docs, backend_integrity) = checker::backend(&db).await;
    let numbers: Vec<i64> = sales.iter().map(|s| s.receipt_no).collect();
    let one_to_n = checker::is_one_to_n(numbers.clone());
    let posted = sales.iter().filter(|s| s.state == "posted").count();
    println!(
        "schemathesis against laned, seed {seed}, scale {scale} (--max-examples {})\n  \
         {}\n  sales taken: {}, receipts 1..n: {one_to_n}, \
         posted: {posted}, documents at the back-end: {}; drained {drain:.1?}\n  \
         integrity_check: lane {lane_integrity}, salemap {}",
        25 * scale,
        summary,
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

/// The back-end contract's document against the real salemap, with a
/// lane's token: the same checks; afterwards no receipt number is held
/// twice and the document numbers are 1..n per series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_salemap() {
    let Some(st) = schemathesis() else {
        return;
    };
    let seed = common::seed("schemathesis against salemap") % (1 << 40);
    let scale = scale();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::Sqlite(dir.path().join("salemap.db"));
    let port = free_port();
    let mut backend = salemap(dir.path(), &db, port);
    backend.start(None);
    let base = format!("http://127.0.0.1:{port}");
    let summary = tokio::task::block_in_place(|| {
        run(
            &st,
            "backend-contract.json",
            &base,
            crate::TOKEN,
            seed,
            scale,
            dir.path(),
        )
    });
    backend.stop();
    let (docs, integrity) = checker::backend(&db).await;
    // The back-end's own rules: the fuzzer's envelopes come from no lane,
    // so there is nothing to compare with.
    let mut receipts: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    let mut numbers: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for d in &docs {
        receipts.entry(&d.series).or_default().push(d.receipt_no);
        let n = d
            .doc_no
            .rsplit_once('/')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(-1);
        numbers.entry(&d.series).or_default().push(n);
    }
    println!(
        "schemathesis against salemap, seed {seed}, scale {scale} (--max-examples {})\n  \
         {summary}\n  documents held: {} in {} series; integrity_check {}",
        25 * scale,
        docs.len(),
        receipts.len(),
        integrity.as_deref().unwrap_or("?")
    );
    for (series, mut r) in receipts {
        let n = r.len();
        r.sort_unstable();
        r.dedup();
        assert_eq!(
            r.len(),
            n,
            "seed {seed}: a receipt number of {series} is held twice"
        );
    }
    for (series, d) in numbers {
        assert!(
            checker::is_one_to_n(d.clone()),
            "seed {seed}: document numbers of {series} are not 1..n: {d:?}"
        );
    }
    assert_eq!(integrity.as_deref(), Some("ok"));
    assert!(
        !backend.logs().contains("panicked"),
        "seed {seed}: salemap panicked:\n{}",
        backend.logs()
    );
}

/// Runs schemathesis with `document` (in docs/openapi/) against `base`,
/// with `token` as the bearer; its summary. Fails on anything it finds.
fn run(
    st: &std::path::Path,
    document: &str,
    base: &str,
    token: &str,
    seed: u64,
    scale: u32,
    dir: &std::path::Path,
) -> String {
    let doc = format!("{}/docs/openapi/{document}", env!("CARGO_MANIFEST_DIR"));
    let examples = (25 * scale).to_string();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/attack/schemathesis.toml"
    );
    let mut cmd = std::process::Command::new(st);
    cmd.args(["--config-file", config])
        .args(["run", &doc, "--url", base])
        .args(["--checks", "all"])
        // Not applicable: neither API deletes anything (use_after_free,
        // ensure_resource_availability), and a document that fits the
        // schema may still break a rule the schema cannot state (the
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
        .arg(format!("Authorization: Bearer {token}"))
        .env("SCHEMATHESIS_HOOKS", "")
        // Its own files (.schemathesis/) go to the run's directory.
        .current_dir(dir);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("run {}: {e}", st.display()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The end of its report: a failing request's body can be megabytes.
    let tail: String = {
        let chars: Vec<char> = stdout.chars().collect();
        chars[chars.len().saturating_sub(8000)..].iter().collect()
    };
    assert!(
        out.status.success(),
        "seed {seed}: schemathesis found problems with {document} ({:?}):\n…{tail}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own summary, as it printed it.
    stdout
        .split_once("SUMMARY")
        .map_or("", |(_, rest)| rest)
        .trim_matches(|c: char| c == '=' || c.is_whitespace())
        .replace('\n', "\n  ")
}
