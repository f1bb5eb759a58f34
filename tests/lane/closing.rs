//! Day closings (docs/journal.md): a lane delivering to salemap closes a
//! business day with the real `laned close-day`; the closing is the next
//! document of the chain, its figures are those of the day's documents
//! (the X report showed the same before), it is final (a second closing
//! and late sales of the day are refused with their codes), it reaches
//! salemap byte for byte in lane order, and `laned verify`, the export and
//! the documented Python verifier all check it. A closing's figures edited
//! in the database, or in an export, are caught and named.

use std::path::Path;
use std::process::Command;

use crate::common::salemap::Salemap;
use crate::common::{self, Lane, sale_with};
use laned::salemap::Lanes;
use serde_json::{Value, json};
use uuid::Uuid;

const TOKEN: &str = "closing-token";
const EXIT_JOURNAL_BROKEN: i32 = 8;

fn laned(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(common::laned_bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LANED_CONFIG")
        .env("TZ", "UTC")
        .output()
        .expect("laned runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn on_day(mut sale: Value, date: &str) -> Value {
    sale["business_date"] = json!(date);
    sale
}

/// Rings a sale of 1.00 (`sku`) on business day `date`: the lane's answer.
async fn ring_on(lane: &Lane, sku: &str, date: &str) -> (u16, Value) {
    lane.put(
        &Uuid::new_v4().to_string(),
        &on_day(sale_with(sku, 1, 100), date),
    )
    .await
}

/// What salemap stored: each closing's lane order and bytes' hash, and
/// the largest lane order of the sales of each day.
fn salemap_closings(db: &Path) -> Vec<(i64, String, String)> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.prepare(
        "SELECT json_extract(envelope, '$.lane_seq'), business_date, fingerprint
         FROM closings ORDER BY closing_no",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_day_is_chained_delivered_final_and_verified_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("salemap.db");
    let sm = Salemap::start(&db, Lanes::single("L03", TOKEN)).await;
    let lane_dir = dir.path().join("lane");
    let lane = Lane::start_with(common::config_with_backend(&lane_dir, &sm.url, TOKEN)).await;

    // 2026-11-22: sales of 5.00 and 14.00 KES (cash, 5.00 change each), a
    // return of the first, a sale of 3.00 voided.
    let a = Uuid::new_v4().to_string();
    let d = Uuid::new_v4().to_string();
    let mut ret = sale_with("A", 1, 500);
    ret["kind"] = json!("return");
    ret["references"] = json!(a);
    let void = json!({
        "kind": "void", "references": d, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:05:00+03:00", "currency": "KES",
        "lines": [], "payments": [], "total": 0
    });
    for (id, body) in [
        (a.clone(), sale_with("A", 1, 500)),
        (Uuid::new_v4().to_string(), sale_with("B", 2, 700)),
        (Uuid::new_v4().to_string(), ret),
        (d.clone(), sale_with("D", 1, 300)),
        (Uuid::new_v4().to_string(), void),
    ] {
        let (s, b) = lane.put(&id, &body).await;
        assert_eq!(s, 201, "{b}");
    }

    // The X report: the day so far, nothing recorded.
    let (code, out) = laned(
        &lane_dir,
        &[
            "report",
            "--x",
            "--date",
            "2026-11-22",
            "--counted",
            "KES=15.00",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let x: Value = serde_json::from_str(&out).unwrap();
    let f = &x["series"][0]["figures"];
    assert_eq!(f["documents"], 5);
    assert_eq!(
        f["kinds"]["sale"],
        json!({"count": 3, "totals": {"KES": 2200}})
    );
    assert_eq!(
        f["kinds"]["return"],
        json!({"count": 1, "totals": {"KES": 500}})
    );
    assert_eq!(
        f["kinds"]["void"],
        json!({"count": 1, "totals": {"KES": 300}})
    );
    // 5 + 14 + 3 − 5 − 3.
    assert_eq!(f["net"], json!({"KES": 1400}));
    assert_eq!(f["tax_codes"], json!({"KES": {"A": 1400}}));
    assert_eq!(f["payment_methods"], json!({"KES": {"cash": 1400}}));
    assert_eq!(
        x["series"][0]["cash"]["KES"],
        json!({"expected": 1400, "counted": 1500, "variance": 100})
    );
    let (code, out) = laned(&lane_dir, &["report", "--x", "--date", "2026-11-22"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("series L03 (open)"), "{out}");

    // Closed through the running daemon, with the counted cash.
    let (code, out) = laned(
        &lane_dir,
        &[
            "close-day",
            "--date",
            "2026-11-22",
            "--counted",
            "KES=15.00",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Closed business day 2026-11-22 of series L03: closing 1"),
        "{out}"
    );
    assert!(out.contains("variance 1.00 KES"), "{out}");

    // Final: a second closing of the day is refused, and so are a late
    // sale of the day and a void of one of its sales.
    let (code, out) = laned(&lane_dir, &["close-day", "--date", "2026-11-22"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("(day_already_closed)"), "{out}");
    let (s, b) = lane
        .put(&Uuid::new_v4().to_string(), &sale_with("LATE", 1, 100))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("business_day_closed")),
        "{b}"
    );
    let late_void = json!({
        "kind": "void", "references": a, "business_date": "2026-11-23",
        "occurred_at": "2026-11-23T09:00:00+03:00", "currency": "KES",
        "lines": [], "payments": [], "total": 0
    });
    let (s, b) = lane.put(&Uuid::new_v4().to_string(), &late_void).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("void_of_closed_day")),
        "{b}"
    );
    // The next day goes on; a day cannot be closed before it begins.
    let (s, b) = lane
        .put(
            &Uuid::new_v4().to_string(),
            &on_day(sale_with("E", 1, 900), "2026-11-23"),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (code, out) = laned(&lane_dir, &["close-day", "--date", "2999-01-01"]);
    assert!(code != 0 && out.contains("(day_in_future)"), "{out}");

    // Delivered in lane order: the closing after the day's five sales,
    // before the next day's; salemap holds its exact bytes.
    lane.until("the closing and every sale reach salemap", || async {
        salemap_closings(&db).len() == 1
            && lane.status().await["counts"]["posted"].as_u64() == Some(6)
    })
    .await;
    let lane_db = rusqlite::Connection::open(lane_dir.join("lane.db")).unwrap();
    let (seq, hash, state, doc_no): (i64, String, String, String) = lane_db
        .query_row(
            "SELECT seq, body_sha256, state, doc_no FROM closings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), doc_no.as_str()), ("posted", "L03/Z000001"));
    assert_eq!(salemap_closings(&db), [(seq, "2026-11-22".into(), hash)]);
    let seqs: Vec<(i64, String)> = lane_db
        .prepare("SELECT seq, business_date FROM sales ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        seqs.iter().all(|(s, d)| (d == "2026-11-22") == (*s < seq)),
        "{seqs:?} around {seq}"
    );
    lane.stop().await;
    sm.stop().await;

    // Verified from the database, from an export, and by the Python script.
    let (code, out) = laned(&lane_dir, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "intact: 6 documents, receipts 1..6, closings 1..1 (closed through 2026-11-22)"
        ),
        "{out}"
    );
    let export = dir.path().join("lane.ndjson");
    let (code, out) = laned(
        &lane_dir,
        &["export", "--state", "all", "-o", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = laned(&lane_dir, &["verify", "--file", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("closings 1..1"), "{out}");
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7);
    assert!(lines[5].contains(r#""kind":"closing""#), "{}", lines[5]);
    // The closing's net edited in a copy of the export.
    let tampered = dir.path().join("tampered.ndjson");
    let edited = lines[5].replacen(r#"\"net\":{\"KES\":1400}"#, r#"\"net\":{\"KES\":1500}"#, 1);
    assert_ne!(edited, lines[5], "the edit found its bytes");
    let mut copy: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    copy[5] = edited;
    std::fs::write(&tampered, copy.join("\n") + "\n").unwrap();
    let (code, out) = laned(&lane_dir, &["verify", "--file", tampered.to_str().unwrap()]);
    assert_eq!(code, EXIT_JOURNAL_BROKEN, "{out}");
    assert!(
        out.contains("BROKEN at document 6 (closing 1")
            && out.contains("net.KES is 1500, the documents give 1400"),
        "{out}"
    );
    if crate::binaries::examples::have(&["python3"], "apt-get install python3") {
        use crate::binaries::journal::{python_script, python_verifier, run_python};
        let script = python_verifier(dir.path());
        let (code, out) = run_python(&script, &export);
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.starts_with(
                "series L03: intact; 6 documents, 1 closings, grand total {'KES': 2300}"
            ),
            "{out}"
        );
        let (code, out) = run_python(&script, &tampered);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("BROKEN at document 6 (closing 1)"), "{out}");
        // The 30-line script does not read a closing's figures, but the
        // changed closing no longer hashes to the next document's link.
        let chain = python_script(dir.path(), "verify_chain.py");
        let (code, out) = run_python(&chain, &export);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(
            out,
            "series L03: intact; 6 receipts, 1 closings, total {'KES': 2300}\n"
        );
        let (code, out) = run_python(&chain, &tampered);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("BROKEN at document 7: "), "{out}");
    }

    // The closing's figures edited in the database, as an attacker would.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(lane_dir.join("lane.db"), copy.path().join("lane.db")).unwrap();
    let c = rusqlite::Connection::open(copy.path().join("lane.db")).unwrap();
    c.execute_batch(
        "DROP TRIGGER closings_are_immutable;
         UPDATE closings SET body = CAST(replace(CAST(body AS TEXT),
             '\"payment_methods\":{\"KES\":{\"cash\":1400}}',
             '\"payment_methods\":{\"KES\":{\"cash\":1300}}') AS BLOB);",
    )
    .unwrap();
    drop(c);
    let (code, out) = laned(copy.path(), &["verify"]);
    assert_eq!(code, EXIT_JOURNAL_BROKEN, "{out}");
    assert!(
        out.contains("BROKEN at document 6 (closing 1")
            && out.contains("payment_methods.KES.cash is 1300"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_close_in_order_and_a_lane_with_no_daemon_closes_under_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let lane = Lane::start(dir.path()).await;
    for (date, sku) in [
        ("2026-11-20", "A"),
        ("2026-11-21", "B"),
        ("2026-11-22", "C"),
    ] {
        let (s, b) = ring_on(&lane, sku, date).await;
        assert_eq!(s, 201, "{b}");
    }
    lane.stop().await;

    // A later day cannot be closed while an earlier one is open; a day
    // without sales has nothing to close.
    let (code, out) = laned(dir.path(), &["close-day", "--date", "2026-11-21"]);
    assert!(code != 0 && out.contains("(earlier_day_open)"), "{out}");
    assert!(out.contains("2026-11-20"), "{out}");
    let (code, out) = laned(dir.path(), &["close-day", "--date", "2026-11-19"]);
    assert!(code != 0 && out.contains("(nothing_to_close)"), "{out}");
    // --through closes every open day in order, each with its number.
    let (code, out) = laned(
        dir.path(),
        &["close-day", "--through", "2026-11-21", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let closed: Value = serde_json::from_str(&out).unwrap();
    let numbers: Vec<(i64, &str)> = closed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["closing"]["closing_no"].as_i64().unwrap(),
                o["closing"]["business_date"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(numbers, [(1, "2026-11-20"), (2, "2026-11-21")]);
    let (code, out) = laned(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("closings 1..2 (closed through 2026-11-21)"),
        "{out}"
    );

    // The closing is the chain's head now: the daemon checks it at start
    // and numbers on after it.
    let lane = Lane::start(dir.path()).await;
    let (s, b) = ring_on(&lane, "D", "2026-11-22").await;
    assert_eq!(s, 201, "{b}");
    lane.stop().await;
    let (code, out) = laned(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact: 4 documents, receipts 1..4"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_end_without_closings_parks_the_closing_and_the_sales_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let backend = common::backend::Backend::start(Some(TOKEN)).await;
    let lane = Lane::start_with(common::config_with_backend(dir.path(), &backend.url, TOKEN)).await;
    let mut ids = vec![];
    for (date, sku) in [
        ("2026-11-22", "A"),
        ("2026-11-22", "B"),
        ("2026-11-23", "C"),
    ] {
        let id = Uuid::new_v4().to_string();
        if date == "2026-11-23" {
            // The admin route: a bad body changes nothing, then the day closes.
            let close = |body: Value| {
                lane.http
                    .post(format!("{}/v1/admin/close-day", lane.base))
                    .bearer_auth(&lane.admin_token)
                    .json(&body)
                    .send()
            };
            let r = close(json!({"business_date": "2026-11-22", "counted": {"KES": 1.5}}))
                .await
                .unwrap();
            assert_eq!(r.status(), 422);
            let b: Value = r.json().await.unwrap();
            assert_eq!(b["code"], "validation_failed", "{b}");
            // A plain sentence about the request, not about a sale.
            assert_eq!(
                b["message"],
                "The request is not valid: counted must be an object of currency codes \
                 and whole minor units, like {\"KES\": 1250000}.",
                "{b}"
            );
            assert_eq!(b["details"]["fields"][0]["field"], "counted", "{b}");
            let r = close(json!({"business_date": "2026-11-22"})).await.unwrap();
            assert_eq!(r.status(), 201);
            let b: Value = r.json().await.unwrap();
            assert_eq!(
                (b["outcome"].as_str(), b["closing"]["closing_no"].as_i64()),
                (Some("closed"), Some(1)),
                "{b}"
            );
        }
        let (s, b) = lane.put(&id, &on_day(sale_with(sku, 1, 100), date)).await;
        assert_eq!(s, 201, "{b}");
        ids.push(id);
    }
    lane.until("every sale posted past the parked closing", || async {
        lane.status().await["counts"]["posted"].as_u64() == Some(3)
    })
    .await;
    assert_eq!(backend.posted_order(), ids, "lane order");
    let c = rusqlite::Connection::open(dir.path().join("lane.db")).unwrap();
    let (state, code): (String, String) = c
        .query_row("SELECT state, last_error_code FROM closings", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (state.as_str(), code.as_str()),
        ("stuck", "closings_not_supported")
    );
    // The lane is not at fault (no pause); the stuck closing is a warning
    // for support, and sales go on.
    let st = lane.status().await;
    assert_eq!(st["backend"]["fault"], Value::Null);
    assert_eq!(st["verdict"], "warning", "{st}");
    assert_eq!(st["troubles"][0]["code"], "closing_stuck", "{st}");
    assert_eq!(
        st["troubles"][0]["headline"],
        "A day's closing has not reached head office"
    );
    lane.stop().await;
}

/// `close_day_at`: at the configured local time the lane closes every
/// earlier day still open, by itself, and delivers the closing; a day is
/// not closed before its time; a lane that was off at that time catches
/// up when it starts. The clock is the `Clock` seam, moved by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_closes_each_day_by_itself_at_the_configured_time_and_catches_up_at_start() {
    use laned::common::clock::{Clock, ManualClock};
    use std::sync::Arc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("salemap.db");
    let sm = Salemap::start(&db, Lanes::single("L03", TOKEN)).await;
    let lane_dir = dir.path().join("lane");
    let config = || {
        let mut c = common::config_with_backend(&lane_dir, &sm.url, TOKEN);
        c.ceiling.time_zone = jiff::tz::TimeZone::get("Africa/Nairobi").unwrap();
        c.close_day_at = Some(jiff::civil::time(3, 0, 0, 0));
        c
    };
    // 13:00 in Nairobi on the 22nd.
    let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let lane = Lane::start_with_clock(config(), clock.clone()).await;
    // The status report shows what the closer scheduled: 03:00 in Nairobi
    // on the 23rd (00:00 UTC), nothing closed yet.
    let closing = |at: &'static str, through: Value| json!({"closed_through": through, "automatic_at": "03:00", "next_automatic_at": at});
    lane.until("the closer schedules 03:00 on the 23rd", || async {
        lane.status().await["closing"] == closing("2026-11-23T00:00:00.000Z", json!({}))
    })
    .await;
    for sku in ["A", "B"] {
        let (s, b) = ring_on(&lane, sku, "2026-11-22").await;
        assert_eq!(s, 201, "{b}");
    }
    lane.until("both sales reach salemap", || async {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT count(*) FROM posted", [], |r| r.get::<_, i64>(0))
            .unwrap()
            == 2
    })
    .await;

    // 02:59 on the 23rd: not yet; the day still takes sales.
    clock.advance(Duration::from_secs(13 * 3600 + 59 * 60));
    let (s, b) = ring_on(&lane, "C", "2026-11-22").await;
    assert_eq!(s, 201, "{b}");
    assert!(salemap_closings(&db).is_empty());

    // 03:00: the 22nd is closed by the lane itself and delivered.
    clock.advance(Duration::from_secs(60));
    lane.until("the automatic closing reaches salemap", || async {
        salemap_closings(&db).len() == 1
    })
    .await;
    assert_eq!(salemap_closings(&db)[0].1, "2026-11-22");
    lane.until("the closer schedules 03:00 on the 24th", || async {
        lane.status().await["closing"]
            == closing("2026-11-24T00:00:00.000Z", json!({"L03": "2026-11-22"}))
    })
    .await;
    let (s, b) = ring_on(&lane, "LATE", "2026-11-22").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("business_day_closed")),
        "{b}"
    );
    // A sale of the 23rd, then the lane is off from 10:00 on the 23rd
    // until 09:00 on the 25th: it missed the 24th's closing time.
    clock.advance(Duration::from_secs(7 * 3600));
    let (s, b) = ring_on(&lane, "D", "2026-11-23").await;
    assert_eq!(s, 201, "{b}");
    lane.stop().await;
    clock.reboot(Duration::from_secs(47 * 3600));
    assert_eq!(
        clock.wall(),
        "2026-11-25T06:00:00Z".parse::<jiff::Timestamp>().unwrap()
    );
    let lane = Lane::start_with_clock(config(), clock.clone()).await;
    lane.until(
        "the missed closing is made at start and delivered",
        || async { salemap_closings(&db).len() == 2 },
    )
    .await;
    assert_eq!(salemap_closings(&db)[1].1, "2026-11-23");
    lane.until("the closer schedules 03:00 on the 26th", || async {
        lane.status().await["closing"]
            == closing("2026-11-26T00:00:00.000Z", json!({"L03": "2026-11-23"}))
    })
    .await;
    lane.stop().await;

    // Both closings name the automatic closing as their author, in the
    // lane's own records, and the journal verifies.
    let c = rusqlite::Connection::open(lane_dir.join("lane.db")).unwrap();
    let actors: Vec<String> = c
        .prepare("SELECT actor FROM closings ORDER BY closing_no")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(actors, [laned::lane::closer::ACTOR; 2]);
    let (code, out) = laned(&lane_dir, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("closings 1..2"), "{out}");
}

/// A lane whose receipt series is not its lane id (`series = "S9"`):
/// `laned close-day` with the daemon down closes that series' days, found
/// by `--through` and by `--date` alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_day_with_the_daemon_down_closes_the_configured_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    cfg.series = "S9".into();
    let lane = Lane::start_with(cfg).await;
    for date in ["2026-11-20", "2026-11-21"] {
        let (s, b) = ring_on(&lane, "A", date).await;
        assert_eq!(s, 201, "{b}");
    }
    lane.stop().await;
    let (code, out) = laned(
        dir.path(),
        &["close-day", "--series", "S9", "--through", "2026-11-20"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Closed business day 2026-11-20 of series S9: closing 1"),
        "{out}"
    );
    let (code, out) = laned(
        dir.path(),
        &["close-day", "--series", "S9", "--date", "2026-11-21"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Closed business day 2026-11-21 of series S9: closing 2"),
        "{out}"
    );
}
