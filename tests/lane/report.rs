//! `laned report --date D`: the lane's business day next to salemap's
//! figures. Reconciled when the back-end holds what the lane delivered; a
//! difference (exit 5) when the back-end lost a sale (its database put
//! back from a copy taken before the sale was posted).

use crate::common;

use common::Lane;
use common::salemap::Salemap;
use laned::salemap::Lanes;
use serde_json::Value;

const TOKEN: &str = "report-token";
const DAY: &str = "2026-11-22";

fn report(dir: &std::path::Path, backend: &str, json: bool) -> (i32, String, String) {
    let mut cmd = assert_cmd::Command::new(common::laned_bin());
    cmd.args(["report", "--date", DAY, "--data-dir"])
        .arg(dir)
        .args(["--backend-url", backend])
        .env("LANED_BACKEND_TOKEN", TOKEN)
        .env_remove("LANED_CONFIG")
        .env_remove("LANED_BACKEND_TOKEN_FILE");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run(dir: &std::path::Path, backend: &str, json: bool) -> (i32, String, String) {
    let (d, b) = (dir.to_owned(), backend.to_owned());
    tokio::task::spawn_blocking(move || report(&d, &b, json))
        .await
        .unwrap()
}

async fn posted(lane: &Lane, n: u64) {
    lane.until("posted", || async {
        lane.status().await["counts"]["posted"] == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reconciles_a_day_and_shows_the_sale_the_backend_lost() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("salemap.db");
    let sm = Salemap::start(&db_path, Lanes::single("L03", TOKEN)).await;
    let url = sm.url.clone();
    let cfg = common::config_with_backend(&dir.path().join("lane"), &url, TOKEN);
    let lane_dir = cfg.data_dir.clone();
    let lane = Lane::start_with(cfg).await;

    for (sku, price) in [("A", 1_000), ("B", 2_500)] {
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(
            lane.put(&id, &common::sale_with(sku, 1, price)).await.0,
            201
        );
    }
    posted(&lane, 2).await;
    // A copy of the back-end's database before the third sale.
    let (db, lanes, addr) = sm.stop().await;
    let copy = dir.path().join("salemap-before.db");
    rusqlite::Connection::open(&db_path)
        .unwrap()
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let sm = Salemap::start_at(db, lanes, addr).await;
    let third = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        lane.put(&third, &common::sale_with("C", 3, 1_150)).await.0,
        201
    );
    posted(&lane, 3).await;

    let (code, out, err) = run(&lane_dir, &url, true).await;
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["reconciled"], true);
    assert_eq!(r["lane"]["delivered"]["count"], 3);
    assert_eq!(r["backend"]["count"], 3);
    assert_eq!(r["backend"]["net"]["KES"], 1_000 + 2_500 + 3_450);
    assert_eq!(r["difference"]["count"], 0);
    let (code, text, _) = run(&lane_dir, &url, false).await;
    assert_eq!(code, 0);
    assert!(text.contains("Reconciled"), "{text}");
    assert!(text.contains("69.50"), "{text}");

    // The back-end's database is put back from the copy: it lost sale C.
    let (db, lanes, addr) = sm.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    std::fs::copy(&copy, &db_path).unwrap();
    let sm = Salemap::start_at(db, lanes, addr).await;
    let (code, out, err) = run(&lane_dir, &url, true).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("does not reconcile"), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["reconciled"], false);
    assert_eq!(r["backend"]["count"], 2);
    assert_eq!(r["difference"]["count"], -1);
    assert_eq!(r["difference"]["sales"]["count"], -1);
    assert_eq!(r["difference"]["net"]["KES"], -3_450);
    // The back-end's list names it.
    let named = r["documents"]["named"].as_array().unwrap();
    assert_eq!(named.len(), 1, "{r:#}");
    assert_eq!(named[0]["finding"], "missing_at_backend", "{r:#}");
    assert_eq!(named[0]["transaction_id"], third.as_str(), "{r:#}");
    let (code, text, _) = run(&lane_dir, &url, false).await;
    assert_eq!(code, 5);
    assert!(
        text.contains("DIFFERENCE: the back-end holds 1 document(s) fewer than the lane delivered (net -34.50 KES)"),
        "{text}"
    );
    assert!(text.contains("Documents that differ (1):"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&third))
        .unwrap_or_default();
    assert!(
        line.contains("L03-000003")
            && line.contains("missing at the back-end: posted here as L03/00000003"),
        "{text}"
    );

    // Same totals, other bytes: the back-end's copy of sale A was changed
    // (its hash edited in its database), and a document the lane never
    // rang is there in its place for sale C. Named, and exit 5.
    let (db, lanes, addr) = sm.stop().await;
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let first: String = conn
        .query_row(
            "SELECT transaction_id FROM posted WHERE receipt_no = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE posted SET fingerprint = ?1 WHERE transaction_id = ?2",
        rusqlite::params!["0".repeat(64), first],
    )
    .unwrap();
    drop(conn);
    let sm = Salemap::start_at(db, lanes, addr).await;
    let stranger = uuid::Uuid::new_v4().to_string();
    let env =
        common::salemap::envelope_of(&stranger, "L03", "L03", 3, common::sale_with("C", 3, 1_150));
    let put = common::client()
        .put(format!("{url}/v1/sales/{stranger}"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(env)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let (code, out, err) = run(&lane_dir, &url, true).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("otherwise than the lane"), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["difference"]["count"], 0, "{r:#}");
    let named: Vec<(String, String)> = r["documents"]["named"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["finding"].as_str().unwrap().to_owned(),
                n["transaction_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("missing_at_backend".to_owned(), third.clone()),
            ("extra_at_backend".to_owned(), stranger.clone()),
            ("differs".to_owned(), first.clone()),
        ],
        "{r:#}"
    );
    let (_, text, _) = run(&lane_dir, &url, false).await;
    let line = text
        .lines()
        .find(|l| l.contains(&first))
        .unwrap_or_default();
    assert!(line.contains("differs: bytes (hash here "), "{text}");
    assert!(line.contains("there 000000000000)"), "{text}");

    // A back-end that cannot be asked: the lane's figures, and exit 1.
    sm.stop().await;
    let (code, text, err) = run(&lane_dir, &url, false).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        text.contains("recorded") && text.contains("could not be asked"),
        "{text}"
    );
    // A bad date changes nothing and says how to write one.
    let out = assert_cmd::Command::new(common::laned_bin())
        .args(["report", "--date", "22/11/2026", "--data-dir"])
        .arg(&lane_dir)
        .env_remove("LANED_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2026-11-22"));
    lane.stop().await;
}
