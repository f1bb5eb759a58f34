//! The fiscal journal is tamper-evident: the real `laned` chains every
//! document of a series (sales, a return, a void) and `laned verify` finds
//! it intact; then, as an attacker with the SQLite file would (dropping the
//! triggers first), one byte of an envelope is changed, a row deleted, two
//! rows swapped, a grand total edited: `laned verify` names the document
//! each time and exits 8. A database whose last link does not hold is
//! refused at start (exit 4) and left byte-identical.

use crate::common;

use std::path::Path;

use common::{RealLane, client, sale_with};
use serde_json::{Value, json};
use uuid::Uuid;

const EXIT_DATABASE_REFUSED: i32 = 4;
const EXIT_JOURNAL_BROKEN: i32 = 8;

/// A lane in `dir` that recorded six documents and stopped: sales of 5.00,
/// 7.00, 3.00 and 2.00 KES, a return of the first, a void of the second
/// (receipts 1..6).
async fn six_documents(dir: &Path) {
    let mut lane = RealLane::spawn(dir, "L03", &[]).expect("starts");
    let http = client();
    let put = |id: String, body: Value| {
        let (http, base) = (http.clone(), lane.base.clone());
        async move {
            let r = http
                .put(format!("{base}/v1/sales/{id}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        }
    };
    let a = Uuid::new_v4().to_string();
    let b = Uuid::new_v4().to_string();
    put(a.clone(), sale_with("A", 1, 500)).await;
    put(b.clone(), sale_with("B", 1, 700)).await;
    let mut ret = sale_with("A", 1, 500);
    ret["kind"] = json!("return");
    ret["references"] = json!(a);
    put(Uuid::new_v4().to_string(), ret).await;
    put(Uuid::new_v4().to_string(), sale_with("C", 1, 300)).await;
    let void = json!({
        "kind": "void", "references": b, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:05:00+03:00", "currency": "KES", "cashier": "E042",
        "lines": [], "payments": [], "total": 0, "change": 0,
        "till": {"invoice_no": "000124", "register": "R3"}, "extra": {}
    });
    put(Uuid::new_v4().to_string(), void).await;
    put(Uuid::new_v4().to_string(), sale_with("D", 1, 200)).await;
    assert_eq!(lane.terminate().code(), Some(0), "{}", lane.stderr());
}

fn verify(dir: &Path, json: bool) -> (i32, String) {
    let mut cmd = std::process::Command::new(common::laned_bin());
    cmd.arg("verify").arg("--data-dir").arg(dir);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.env_remove("LANED_CONFIG").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A copy of the lane's data directory, changed by `sql` as an attacker
/// would: without the triggers that forbid deleting a sale.
fn tampered(dir: &Path, sql: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("lane.db"), copy.path().join("lane.db")).unwrap();
    let c = rusqlite::Connection::open(copy.path().join("lane.db")).unwrap();
    c.execute_batch(&format!("DROP TRIGGER sales_are_never_deleted; {sql}"))
        .unwrap();
    copy
}

/// One envelope's bytes, edited as text.
fn edit_body(receipt_no: i64, from: &str, to: &str) -> String {
    format!(
        "UPDATE sales SET body = CAST(replace(CAST(body AS TEXT), '{from}', '{to}') AS BLOB)
         WHERE receipt_no = {receipt_no};"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_intact_and_every_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    six_documents(dir.path()).await;

    let (code, out) = verify(dir.path(), false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("series L03: intact: 6 documents, receipts 1..6, grand total 5.00 KES"),
        "{out}"
    );
    let (_, out) = verify(dir.path(), true);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["intact"], true);
    // 5 + 7 - 5 (the return) + 3 - 7 (the void of the second) + 2.
    assert_eq!(v["series"]["L03"]["grand_total"]["KES"], 500);
    // Each envelope carries its link and the total after it.
    let c = rusqlite::Connection::open(dir.path().join("lane.db")).unwrap();
    let bodies: Vec<Vec<u8>> = c
        .prepare("SELECT body FROM sales ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let first: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(first["prev_hash"], laned::contract::journal::GENESIS);
    assert_eq!(first["grand_total"], json!({"KES": 500}));
    let second: Value = serde_json::from_slice(&bodies[1]).unwrap();
    assert_eq!(
        second["prev_hash"],
        laned::common::hash::sha256_hex(&bodies[0])
    );

    let cases = [
        (
            "one byte of the third envelope",
            edit_body(3, "\"quantity\":\"1\"", "\"quantity\":\"2\""),
            "BROKEN at document 4 (receipt 4",
            "is not the hash of the document before it",
        ),
        (
            "the third row deleted",
            "DELETE FROM sales WHERE receipt_no = 3;".to_owned(),
            "BROKEN at document 3 (receipt 4",
            "its receipt number is 4, but the series' next is 3",
        ),
        (
            "rows two and three swapped",
            "UPDATE sales SET seq = -seq WHERE receipt_no IN (2, 3);
             UPDATE sales SET seq = 3 WHERE seq = -2;
             UPDATE sales SET seq = 2 WHERE seq = -3;"
                .to_owned(),
            "BROKEN at document 2 (receipt 3",
            "its receipt number is 3, but the series' next is 2",
        ),
        (
            "the second grand total edited",
            edit_body(
                2,
                "\"grand_total\":{\"KES\":1200}",
                "\"grand_total\":{\"KES\":1300}",
            ),
            "BROKEN at document 2 (receipt 2",
            "its grand_total {\"KES\": 1300} is not {\"KES\": 1200}",
        ),
    ];
    for (what, sql, at, why) in cases {
        let copy = tampered(dir.path(), &sql);
        let (code, out) = verify(copy.path(), false);
        assert_eq!(code, EXIT_JOURNAL_BROKEN, "{what}: {out}");
        assert!(out.contains(at) && out.contains(why), "{what}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_whose_last_link_does_not_hold_refuses_to_start_and_leaves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    six_documents(dir.path()).await;
    // The last document changed: nothing after it to catch it but the
    // journal's head.
    let copy = tampered(dir.path(), &edit_body(6, "\"D\"", "\"E\""));
    let before = std::fs::read(copy.path().join("lane.db")).unwrap();
    let stderr = RealLane::expect_refusal(
        copy.path(),
        "L03",
        EXIT_DATABASE_REFUSED,
        "the fiscal journal of series L03 is broken at receipt 6",
    );
    assert!(stderr.contains("laned verify"), "{stderr}");
    assert_eq!(
        std::fs::read(copy.path().join("lane.db")).unwrap(),
        before,
        "the refused database was changed"
    );
    // The intact lane starts and goes on numbering onto its chain.
    let lane = RealLane::spawn(dir.path(), "L03", &[]).expect("the intact lane starts");
    let r = client()
        .put(format!("{}/v1/sales/{}", lane.base, Uuid::new_v4()))
        .json(&sale_with("F", 1, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(lane);
    let (code, out) = verify(dir.path(), false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 7 documents"), "{out}");
}

/// Runs a Python script of docs/journal.md on an export: its exit code,
/// and what it printed (standard output, then standard error).
pub(crate) fn run_python(script: &Path, file: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The complete Python verifier exactly as docs/journal.md shows it.
pub(crate) fn python_verifier(dir: &Path) -> std::path::PathBuf {
    python_script(dir, "verify_journal.py")
}

/// A Python script exactly as docs/journal.md shows it, after its marker.
pub(crate) fn python_script(dir: &Path, name: &str) -> std::path::PathBuf {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/journal.md"))
            .unwrap();
    let from = doc
        .find(&format!("<!-- {name} -->\n```python\n"))
        .expect("the script's marker");
    let body = &doc[from..];
    let start = body.find('\n').unwrap() + 1;
    let start = start + body[start..].find('\n').unwrap() + 1;
    let end = start + body[start..].find("```").unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &body[start..end]).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_verifies_with_nothing_else_in_laned_and_in_the_documented_python() {
    let dir = tempfile::tempdir().unwrap();
    six_documents(dir.path()).await;
    let export = dir.path().join("lane.ndjson");
    let out = std::process::Command::new(common::laned_bin())
        .args(["export", "--state", "all", "-o"])
        .arg(&export)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One byte of the third document changed in a copy of the export.
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen(r#"\"quantity\":\"1\""#, r#"\"quantity\":\"2\""#, 1);
    assert_ne!(
        lines[2],
        text.lines().nth(2).unwrap(),
        "the edit found its byte"
    );
    let tampered = dir.path().join("tampered.ndjson");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();

    let laned = |file: &Path| {
        let out = std::process::Command::new(common::laned_bin())
            .args(["verify", "--file"])
            .arg(file)
            .env_remove("LANED_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = laned(&export);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("series L03: intact: 6 documents"), "{out}");
    let (code, out) = laned(&tampered);
    assert_eq!(code, Some(EXIT_JOURNAL_BROKEN), "{out}");
    assert!(out.contains("BROKEN at document 4 (receipt 4"), "{out}");

    // A line that is not an export record, after a blank one: named by its
    // line number (records are decoded on the worker threads, the number
    // counted again), with the configuration exit code.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.insert(2, String::new());
    lines[4] = r#"{"envelope": "not the field"}"#.into();
    let not_an_export = dir.path().join("not-an-export.ndjson");
    std::fs::write(&not_an_export, lines.join("\n") + "\n").unwrap();
    let out = std::process::Command::new(common::laned_bin())
        .args(["verify", "--file"])
        .arg(&not_an_export)
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 5 of") && err.contains("is not an export record with envelope_text"),
        "{err}"
    );

    if !super::examples::have(&["python3"], "apt-get install python3") {
        return;
    }
    let script = python_verifier(dir.path());
    let chain = python_script(dir.path(), "verify_chain.py");
    assert!(
        std::fs::read_to_string(&chain).unwrap().lines().count() <= 30,
        "the chain script is 30 lines"
    );
    let (code, out) = run_python(&script, &export);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("series L03: intact; 6 documents, 0 closings, grand total {'KES': 500}"),
        "{out}"
    );
    let (code, out) = run_python(&script, &tampered);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at document 4 (receipt 4)"), "{out}");
    // The 30-line script: the same verdicts (sales, a return and a void).
    let (code, out) = run_python(&chain, &export);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        "series L03: intact; 6 receipts, 0 closings, total {'KES': 500}\n"
    );
    let (code, out) = run_python(&chain, &tampered);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN at document 4: "), "{out}");
}
