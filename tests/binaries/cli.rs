//! `laned status` reads the lane's database directly: it works beside a
//! running daemon and, what support needs most, when the daemon is down.

use crate::common;

use common::{RealLane, client};
use serde_json::Value;
use uuid::Uuid;

fn status(dir: &std::path::Path, json: bool) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.arg("status")
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("laned status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_database_with_the_daemon_running_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    let http = client();
    for _ in 0..2 {
        let r = http
            .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
            .json(&common::sale())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (code, out, err) = tokio::task::spawn_blocking({
        let d = dir.path().to_owned();
        move || status(&d, true)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let running: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(running["lane_id"], "L03");
    assert_eq!(running["counts"]["pending"], 2);
    assert_eq!(running["pending_amount"]["KES"], 50_000);
    assert_eq!(running["last_receipt_no"]["L03"], 2);

    #[cfg(unix)]
    assert_eq!(lane.terminate().code(), Some(0));
    #[cfg(not(unix))]
    lane.kill9();
    let (code, out, err) = status(dir.path(), true);
    assert_eq!(code, 0, "{err}");
    let stopped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stopped["counts"], running["counts"]);
    assert!(stopped["ceiling"]["offline_seconds"].is_u64());
    assert_eq!(stopped["lane_state"], "offline", "{stopped}");
    let (code, text, _) = status(dir.path(), false);
    assert_eq!(code, 0);
    assert!(text.contains("pending 2"), "{text}");
    // For people, amounts as the page shows them; minor units only in JSON.
    assert!(text.contains("pending amount     500.00 KES\n"), "{text}");
    assert!(text.contains("last sync          never"), "{text}");

    // No database there: a clear refusal, exit 1.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = status(empty.path(), true);
    assert_eq!(code, 1);
    assert!(err.contains("no lane database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_list_and_show_explain_a_stuck_sale_with_the_daemon_stopped() {
    use common::backend::{Backend, Reply};
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some("t")).await;
    let cfg = common::config_with_backend(dir.path(), &backend.url, "t");
    let lane = common::Lane::start_with(cfg).await;
    let ids = lane.ring(1).await;
    lane.until("the first is posted", || async {
        lane.sale_state(&ids[0]).await == "posted"
    })
    .await;
    let more = [Uuid::new_v4().to_string()];
    backend.script([Reply::RefuseItems(vec![(
        more[0].clone(),
        422,
        "unknown_sku",
    )])]);
    let (code, _) = lane.put(&more[0], &common::sale_with("SKU9", 1, 700)).await;
    assert_eq!(code, 201);
    lane.until("the second sale is stuck", || async {
        lane.sale_state(&more[0]).await == "stuck"
    })
    .await;
    lane.stop().await;

    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::laned_bin())
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("LANED_CONFIG")
            .output()
            .expect("laned");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["sales", "list", "--state", "stuck", "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["transaction_id"], more[0].as_str());
    let (code, table, _) = run(&["sales", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("L03-000001") && table.contains("L03-000002"),
        "{table}"
    );
    let (code, out, err) = run(&["sales", "show", &more[0]]);
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["state"], "stuck");
    assert_eq!(shown["envelope"]["transaction_id"], more[0].as_str());
    let history = shown["attempt_history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{shown}");
    assert_eq!(history[0]["outcome"], "stuck");
    assert_eq!(history[0]["error_code"], "unknown_sku");
    // Bad input: a clear message and exit 2; an unknown sale: exit 1.
    assert_eq!(run(&["sales", "list", "--state", "lost"]).0, 2);
    assert_eq!(run(&["sales", "show", "not-a-uuid"]).0, 2);
    let (code, _, err) = run(&["sales", "show", &Uuid::new_v4().to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("no sale"), "{err}");
}

fn laned(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = std::process::Command::new(common::laned_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG")
        .output()
        .expect("laned");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_every_sale_as_ndjson_or_csv_with_formulas_defused() {
    use common::backend::{Backend, Reply};
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some("t")).await;
    let cfg = common::config_with_backend(dir.path(), &backend.url, "t");
    let lane = common::Lane::start_with(cfg).await;
    let posted = lane.ring(1).await;
    lane.until("posted", || async {
        lane.sale_state(&posted[0]).await == "posted"
    })
    .await;
    // The back-end refuses one with a message a spreadsheet would run.
    let stuck = Uuid::new_v4().to_string();
    backend.script([Reply::RefuseItems(vec![(stuck.clone(), 422, "=1+1")])]);
    assert_eq!(
        lane.put(&stuck, &common::sale_with("S2", 1, 300)).await.0,
        201
    );
    lane.until("stuck", || async {
        lane.sale_state(&stuck).await == "stuck"
    })
    .await;
    lane.stop().await;

    let (code, out, err) = laned(&["export", "--state", "all"], dir.path());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["transaction_id"], posted[0].as_str());
    assert_eq!(lines[0]["envelope"]["transaction_id"], posted[0].as_str());
    assert_eq!(lines[1]["state"], "stuck");
    // NDJSON keeps the back-end's words as they are.
    assert_eq!(lines[1]["attempts"][0]["error_code"], "=1+1");
    // The default is the stuck sales.
    let (_, out, _) = laned(&["export"], dir.path());
    assert_eq!(out.lines().count(), 1);

    let file = dir.path().join("stuck.csv");
    let (code, _, err) = laned(
        &[
            "export",
            "--state",
            "all",
            "--format",
            "csv",
            "-o",
            file.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 2 sales"), "{err}");
    let mut r = csv::Reader::from_path(&file).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[1][col("state")], "stuck");
    let env: Value = serde_json::from_str(&rows[1][col("envelope")]).unwrap();
    assert_eq!(env["transaction_id"], stuck.as_str());
    // In CSV, a cell a spreadsheet would take for a formula is defused.
    assert_eq!(&rows[1][col("last_error_code")], "'=1+1");
    assert_eq!(&rows[0][col("last_error_code")], "");

    let (_, out, _) = laned(
        &[
            "export",
            "--state",
            "all",
            "--since",
            "2999-01-01T00:00:00Z",
        ],
        dir.path(),
    );
    assert_eq!(out.lines().count(), 0);
    assert_eq!(laned(&["export", "--state", "lost"], dir.path()).0, 2);
    assert_eq!(laned(&["export", "--since", "yesterday"], dir.path()).0, 2);
}

#[test]
fn support_commands_refuse_a_newer_database_and_wait_for_a_starting_daemon() {
    // A database from a newer laned: every reading command refuses it with
    // exit code 4 and leaves it byte-identical.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(laned::lane::store::DB_FILE);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE sales (seq INTEGER PRIMARY KEY); PRAGMA application_id = {};
             PRAGMA user_version = 99;",
            laned::lane::store::APPLICATION_ID
        ))
        .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let out = dir.path().join("copy.db");
    for args in [
        vec!["status"],
        vec!["sales", "list"],
        vec!["export", "--state", "all"],
        vec!["backup", "-o", out.to_str().unwrap()],
        vec!["report", "--date", "2026-11-22"],
        vec!["retry", "--all-stuck", "--reason", "test"],
    ] {
        let (code, _, err) = laned(&args, dir.path());
        assert_eq!(code, 4, "{args:?}: {err}");
        assert!(err.contains("newer"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(!out.exists());

    // A daemon that holds the lock but has not bound its address yet:
    // a write waits for it (exit code 3) instead of changing the database.
    let dir = tempfile::tempdir().unwrap();
    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    drop(lane);
    let mut lock = laned::lane::store::InstanceLock::acquire(dir.path()).unwrap();
    lock.describe("laned pid 1 (lane L03, starting since 2026-11-23T00:00:00.000Z)")
        .unwrap();
    let (code, _, err) = laned(&["retry", "--all-stuck", "--reason", "test"], dir.path());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("starting"), "{err}");
    // Reading commands do not need the lock.
    assert_eq!(laned(&["status"], dir.path()).0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_and_the_status_name_the_version_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("starts");
    let status = common::get_json(&client(), &format!("{}/v1/status", lane.base)).await;
    let want = format!(
        "{} ({})",
        status["version"].as_str().unwrap(),
        status["commit"].as_str().unwrap()
    );
    let commit = status["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    for (bin, name) in [
        (common::laned_bin(), "laned"),
        (common::salemap_bin(), "salemap"),
    ] {
        let out = std::process::Command::new(bin)
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{name} {want}")
        );
    }
    let page = client()
        .get(format!("{}/", lane.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("laned {want}")), "{page}");
}
