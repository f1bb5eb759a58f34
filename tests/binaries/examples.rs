//! The till client examples of `docs/examples/` against the real `laned`:
//! the Python one run with `python3`, the TypeScript one compiled with `tsc`
//! and run with `node`. On a demo lane each exits 0 and its transcript names
//! the receipt of the one sale the lane then holds (the repeat made no
//! second sale, the invalid sale was refused); on a lane past its sync
//! ceiling each exits 3, having told the cashier to stop selling.
//!
//! Without the tools the tests say so and skip, unless
//! `LANED_REQUIRE_EXAMPLES=1` (CI, which installs them), where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common;

use common::RealLane;
use common::backend::Backend;

/// `docs/examples/` of this repository.
fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples")
}

/// Whether every one of `tools` is on `PATH`. When one is not: a failure
/// if `LANED_REQUIRE_EXAMPLES=1`, else a visible skip and `false`.
pub(crate) fn have(tools: &[&str], install: &str) -> bool {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| !dirs.iter().any(|d| d.join(tool).is_file()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    assert!(
        std::env::var("LANED_REQUIRE_EXAMPLES").as_deref() != Ok("1"),
        "LANED_REQUIRE_EXAMPLES=1 but {missing} was not found ({install})"
    );
    common::skipped(
        "this test",
        &format!("no {missing} on this machine ({install})"),
        "LANED_REQUIRE_EXAMPLES",
    );
    false
}

/// `program file`: an example, to be given the lane's address.
fn example(program: &str, file: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg(file);
    cmd
}

/// Runs an example against the lane at `base`; returns its exit code, its
/// transcript (stdout) and its stderr.
fn run(mut cmd: Command, base: &str) -> (Option<i32>, String, String) {
    cmd.arg(base)
        .env_remove("LANED_URL")
        .env_remove("LANED_API_TOKEN")
        .stdin(Stdio::null());
    let out = tokio::task::block_in_place(|| cmd.output()).expect("run the example");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The example `cmd` makes, on a demo lane and then on a suspended one.
async fn check(cmd: impl Fn() -> Command) {
    let http = common::client();

    // The lane the examples' README starts: `laned demo`, delivering to its
    // embedded salemap.
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(common::laned_bin());
    demo.args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("RUST_LOG");
    let mut lane = RealLane::spawn_command(demo).expect("the demo starts");
    let (code, out, err) = run(cmd(), &lane.base);
    assert_eq!(code, Some(0), "the example failed:\n{out}{err}");
    // One sale on the lane: the repeat made none, the invalid sale was
    // refused. The transcript names its receipt.
    let sales = common::all_sales(&http, &lane.base).await;
    assert_eq!(sales.len(), 1, "{sales:?}\n{out}");
    let receipt = sales[0]["receipt"].as_str().expect("a receipt");
    assert!(
        out.contains(&format!("OK: one sale recorded, receipt {receipt}\n")),
        "receipt {receipt} not in:\n{out}"
    );
    assert!(out.contains(" -> 422 validation_failed: "), "{out}");
    #[cfg(unix)]
    assert_eq!(lane.terminate().code(), Some(0), "{}", lane.stderr());

    // A lane whose back-end is down, past a sync ceiling of two seconds.
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(None).await;
    backend.set_down(true);
    let mut serve = Command::new(common::laned_bin());
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--lane-id", "L03"])
        .args(["--backend-url", backend.url.as_str()])
        .args(["--sync-ceiling", "2s", "--warn-after", "1s"])
        .args(["--heartbeat-interval", "500ms"])
        .args(["--backoff-base", "100ms", "--backoff-cap", "200ms"])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LANED_API_TOKEN")
        .env_remove("LANED_BACKEND_TOKEN")
        .env_remove("LANED_CONFIG");
    let mut lane = RealLane::spawn_command(serve).expect("laned starts");
    tokio::task::block_in_place(|| lane.wait_for_log("lane suspended", 1));
    let (code, out, err) = run(cmd(), &lane.base);
    assert_eq!(code, Some(3), "expected exit 3 (suspended):\n{out}{err}");
    assert!(out.contains("!! lane_suspended: STOP SELLING"), "{out}");
    let sales = common::all_sales(&http, &lane.base).await;
    assert!(sales.is_empty(), "{sales:?}");
    #[cfg(unix)]
    assert_eq!(lane.terminate().code(), Some(0), "{}", lane.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_rings_repeats_and_is_refused_as_documented() {
    if !have(&["python3"], "apt-get install python3") {
        return;
    }
    let script = examples().join("till_client.py");
    check(|| example("python3", &script)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_example_compiled_with_tsc_does_the_same_under_node() {
    if !have(
        &["tsc", "node"],
        "apt-get install nodejs npm, then npm install -g typescript",
    ) {
        return;
    }
    let out_dir = tempfile::tempdir().unwrap();
    let mut tsc = Command::new("tsc");
    tsc.arg("-p")
        .arg(examples())
        .arg("--outDir")
        .arg(out_dir.path())
        .stdin(Stdio::null());
    let built = tokio::task::block_in_place(|| tsc.output()).expect("run tsc");
    assert!(
        built.status.success(),
        "tsc -p docs/examples failed:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let script = out_dir.path().join("till_client.js");
    assert!(script.is_file(), "tsc wrote no {}", script.display());
    check(|| example("node", &script)).await;
}
