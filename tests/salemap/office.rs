//! What head office sees (docs/backend-contract.md, "What head office
//! sees"): per lane and series the watermark, the holes with their ages,
//! the days certified and not, the documents refused as a forked lane, and
//! when the lane was last heard from; `GET /v1/lanes`, `/v1/lanes/{lane}`,
//! the page and `/metrics`, with who may read them. On SQLite and
//! PostgreSQL, with salemap's clock moved by the test.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::salemap::Salemap;
use laned::common::clock::ManualClock;
use laned::salemap::Lanes;
use serde_json::Value;

use super::chains::{Doc, Journal, TOKEN, batch, put, put_as};
use super::posting::{Backing, both, postgres, sqlite};

const OFFICE: &str = "office-finance-token";
const L04: &str = "lane-L04-token";

both!(
    a_hole_shows_with_its_age_and_goes_when_the_held_back_sale_arrives,
    holes_are_exactly_the_numbers_not_held_whatever_the_order_of_arrival,
    a_forked_lane_and_an_uncertified_day_are_shown_worst_first,
    a_silent_lane_is_trouble_past_its_ceiling_and_only_readers_see_lanes,
);

fn lanes() -> Lanes {
    Lanes::single("L03", TOKEN)
        .with_lane("L04", L04)
        .with_office("finance", OFFICE)
}

/// salemap on `b` with a clock the test moves, from 2026-11-22 10:00 UTC.
async fn start(b: &Backing) -> (Salemap, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let sm = Salemap::start_with(
        b.db.clone(),
        lanes(),
        "127.0.0.1:0".parse().unwrap(),
        clock.clone(),
        laned::salemap::office::DEFAULT_CEILING,
    )
    .await;
    (sm, clock)
}

async fn get(url: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = common::client().get(format!("{url}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `GET /v1/lanes/{lane}` as head office.
async fn lane(url: &str, lane: &str) -> Value {
    let (status, body) = get(url, &format!("/v1/lanes/{lane}"), Some(OFFICE)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET /v1/lanes` as head office.
async fn overview(url: &str) -> Value {
    let (status, body) = get(url, "/v1/lanes", Some(OFFICE)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The holes of a lane's detail as (series, first, last).
fn holes(detail: &Value) -> Vec<(String, i64, i64)> {
    detail["holes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["series"].as_str().unwrap().to_owned(),
                h["first_no"].as_i64().unwrap(),
                h["last_no"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn a_hole_shows_with_its_age_and_goes_when_the_held_back_sale_arrives(b: Backing) {
    let (sm, clock) = start(&b).await;
    let mut j = Journal::new("L03");
    let docs: Vec<Doc> = (0..6).map(|_| j.next()).collect();
    // Receipt 3 is held back (a proxy, a sale stuck at the lane): 4 and 5
    // arrive without it.
    for d in [&docs[0], &docs[1], &docs[3], &docs[4]] {
        assert_eq!(put(&sm.url, d).await.status, 201);
    }
    let d = lane(&sm.url, "L03").await;
    let s = &d["series"][0];
    assert_eq!(
        (&s["watermark"], &s["highest_receipt_no"], &s["missing"]),
        (&Value::from(2), &Value::from(5), &Value::from(1)),
        "{d}"
    );
    assert_eq!(s["oldest_hole"]["first_no"], 3, "{d}");
    assert_eq!(s["oldest_hole"]["age_s"], 0, "{d}");
    assert_eq!(holes(&d), [("L03".to_owned(), 3, 3)], "{d}");
    // A young hole is not trouble yet (a retry brings it in).
    assert_eq!(d["status"], "ok", "{d}");

    // Two hours on, it is: with its age, and what to do.
    clock.advance(Duration::from_secs(2 * 3600));
    let o = overview(&sm.url).await;
    let l03 = &o["lanes"][0];
    assert_eq!(l03["lane_id"], "L03", "{o}");
    assert_eq!(l03["status"], "old_hole", "{o}");
    assert_eq!(l03["trouble"][0]["age_s"], 7200, "{o}");
    let message = l03["trouble"][0]["message"].as_str().unwrap();
    assert!(message.contains("receipt 3"), "{message}");
    let (_, text) = get(&sm.url, "/metrics", Some(OFFICE)).await;
    let text = text.as_str().unwrap().to_owned();
    assert!(
        text.contains("salemap_oldest_hole_age_seconds{lane=\"L03\",series=\"L03\"} 7200"),
        "{text}"
    );
    assert!(
        text.contains("salemap_watermark{lane=\"L03\",series=\"L03\"} 2"),
        "{text}"
    );

    // It arrives, and sale 6 after it: the hole is gone.
    assert_eq!(put(&sm.url, &docs[2]).await.status, 201);
    assert_eq!(put(&sm.url, &docs[5]).await.status, 201);
    let d = lane(&sm.url, "L03").await;
    let s = &d["series"][0];
    assert_eq!(
        (&s["watermark"], &s["missing"], &s["oldest_hole"]),
        (&Value::from(6), &Value::from(0), &Value::Null),
        "{d}"
    );
    assert!(holes(&d).is_empty(), "{d}");
    assert_eq!(d["status"], "ok", "{d}");
    // What salemap keeps survives a restart.
    let (db, _, addr) = sm.stop().await;
    let sm = Salemap::start_with(
        db,
        lanes(),
        addr,
        clock.clone(),
        laned::salemap::office::DEFAULT_CEILING,
    )
    .await;
    assert_eq!(lane(&sm.url, "L03").await["series"][0]["watermark"], 6);
    sm.stop().await;
}

/// Receipts of two series arrive in a seeded random order, singly and in
/// batches, some sent twice: after every request the holes salemap shows
/// are exactly the numbers it does not hold.
async fn holes_are_exactly_the_numbers_not_held_whatever_the_order_of_arrival(b: Backing) {
    use rand::{RngExt, SeedableRng};
    let seed = common::seed("holes_are_exactly_the_numbers_not_held");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let (sm, _clock) = start(&b).await;
    let mut docs = Vec::new();
    for series in ["L03", "L03B"] {
        let mut j = Journal::of("L03", series);
        let n = rng.random_range(5..25);
        docs.extend((0..n).map(|_| (series, j.next())));
    }
    for i in (1..docs.len()).rev() {
        docs.swap(i, rng.random_range(0..=i));
    }
    let mut held: BTreeSet<(&str, i64)> = BTreeSet::new();
    let mut rest = &docs[..];
    while !rest.is_empty() {
        let take = rng.random_range(1..=rest.len().min(6));
        let (now, later) = rest.split_at(take);
        let mut send: Vec<&Doc> = now.iter().map(|(_, d)| d).collect();
        // Sometimes one already sent goes again (a lost answer).
        if rng.random_bool(0.3) {
            let (_, again) = &docs[rng.random_range(0..docs.len() - later.len())];
            send.push(again);
        }
        if send.len() == 1 {
            let a = put(&sm.url, send[0]).await;
            assert!([200, 201].contains(&a.status), "seed {seed}: {}", a.body);
        } else {
            for r in batch(&sm.url, &send).await {
                assert!(
                    [200, 201].contains(&r["status"].as_u64().unwrap()),
                    "seed {seed}: {r}"
                );
            }
        }
        held.extend(now.iter().map(|(s, d)| (*s, d.receipt)));
        let mut expected = Vec::new();
        for series in ["L03", "L03B"] {
            let top = held
                .iter()
                .filter(|(s, _)| *s == series)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0);
            let mut run: Option<(i64, i64)> = None;
            for n in 1..=top {
                if held.contains(&(series, n)) {
                    if let Some((a, z)) = run.take() {
                        expected.push((series.to_owned(), a, z));
                    }
                } else {
                    run = Some(run.map_or((n, n), |(a, _)| (a, n)));
                }
            }
        }
        let d = lane(&sm.url, "L03").await;
        assert_eq!(holes(&d), expected, "seed {seed}: {d}");
        for s in d["series"].as_array().unwrap() {
            let name = s["series"].as_str().unwrap();
            let first_missing = expected
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, a, _)| a - 1);
            let top = held
                .iter()
                .filter(|(s, _)| *s == name)
                .map(|(_, n)| *n)
                .max()
                .unwrap_or(0);
            assert_eq!(
                s["watermark"].as_i64(),
                Some(first_missing.unwrap_or(top)),
                "seed {seed}: {d}"
            );
        }
        rest = later;
    }
    let d = lane(&sm.url, "L03").await;
    assert!(holes(&d).is_empty(), "seed {seed}: {d}");
    sm.stop().await;
}

async fn a_forked_lane_and_an_uncertified_day_are_shown_worst_first(b: Backing) {
    let (sm, clock) = start(&b).await;
    // L03 forks: a copy restored after receipt 1 rings its own receipt 2.
    let mut j = Journal::new("L03");
    let first = j.next();
    let mut copy = j.clone_journal();
    let second = j.next();
    let forked = copy.next();
    assert_eq!(put(&sm.url, &first).await.status, 201);
    assert_eq!(put(&sm.url, &second).await.status, 201);
    let refused = put(&sm.url, &forked).await;
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (422, &Value::from("chain_conflict")),
        "{}",
        refused.body
    );
    // L04 closes a day whose second sale is held back.
    let mut k = Journal::of("L04", "L04");
    let sales: Vec<Doc> = (0..3).map(|_| k.next()).collect();
    let closing = k.closing(1);
    for d in [&sales[0], &sales[2]] {
        assert_eq!(put_as(&sm.url, "sales", d, L04).await.status, 201);
    }
    assert_eq!(put_as(&sm.url, "closings", &closing, L04).await.status, 201);
    clock.advance(Duration::from_secs(90 * 60));
    // The lanes keep beating: neither is silent.
    for t in [TOKEN, L04] {
        assert_eq!(get(&sm.url, "/v1/heartbeat", Some(t)).await.0, 200);
    }
    // The refused copy tries again: counted once, sent twice.
    assert_eq!(put(&sm.url, &forked).await.status, 422);

    let o = overview(&sm.url).await;
    let order: Vec<(&str, &str)> = o["lanes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["lane_id"].as_str().unwrap(),
                l["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [("L03", "chain_conflict"), ("L04", "old_hole")],
        "{o}"
    );
    assert_eq!(o["lanes_in_trouble"], 2, "{o}");
    let l04 = &o["lanes"][1];
    let codes: Vec<&str> = l04["trouble"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["old_hole", "uncertified_day"], "{o}");
    assert_eq!(
        l04["series"][0]["oldest_uncertified"]["business_date"], "2026-11-22",
        "{o}"
    );
    let d = lane(&sm.url, "L03").await;
    let c = &d["conflicts"][0];
    assert_eq!(
        (
            &c["transaction_id"],
            &c["holder"],
            &c["code"],
            &c["attempts"]
        ),
        (
            &Value::from(forked.id.clone()),
            &Value::from(second.id.clone()),
            &Value::from("chain_conflict"),
            &Value::from(2)
        ),
        "{d}"
    );
    assert_eq!(d["series"][0]["conflicts"], 1, "{d}");

    // The held-back sale arrives: L04's day is certified, the lane is ok.
    assert_eq!(put_as(&sm.url, "sales", &sales[1], L04).await.status, 201);
    let d = lane(&sm.url, "L04").await;
    let s = &d["series"][0];
    assert_eq!(d["status"], "ok", "{d}");
    assert_eq!(
        (&s["certified"], &s["last_certified"]["business_date"]),
        (&Value::from(1), &Value::from("2026-11-22")),
        "{d}"
    );
    assert_eq!(s["oldest_uncertified"], Value::Null, "{d}");
    // And the repeat of the closing carries its certificate.
    let again = put_as(&sm.url, "closings", &closing, L04).await;
    assert!(again.body["certificate"].is_object(), "{}", again.body);
    sm.stop().await;
}

async fn a_silent_lane_is_trouble_past_its_ceiling_and_only_readers_see_lanes(b: Backing) {
    let (sm, clock) = start(&b).await;
    assert_eq!(get(&sm.url, "/v1/heartbeat", Some(TOKEN)).await.0, 200);
    let d = lane(&sm.url, "L03").await;
    assert_eq!(
        (&d["status"], &d["silent_s"]),
        (&Value::from("ok"), &Value::from(0)),
        "{d}"
    );
    assert!(d["last_heartbeat"].is_string(), "{d}");
    clock.advance(Duration::from_secs(25 * 3600));
    let d = lane(&sm.url, "L03").await;
    assert_eq!(d["status"], "silent", "{d}");
    assert_eq!(d["trouble"][0]["age_s"], 25 * 3600, "{d}");
    // A posting is contact too.
    let mut j = Journal::new("L03");
    assert_eq!(put(&sm.url, &j.next()).await.status, 201);
    assert_eq!(lane(&sm.url, "L03").await["status"], "ok");

    // Who may read what.
    let (status, body) = get(&sm.url, "/v1/lanes", None).await;
    assert_eq!(
        (status, &body["code"]),
        (401, &Value::from("unauthorized")),
        "{body}"
    );
    let (status, body) = get(&sm.url, "/v1/lanes", Some(TOKEN)).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &Value::from("office_only")),
        "{body}"
    );
    let (status, body) = get(&sm.url, "/metrics", Some(TOKEN)).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &Value::from("office_only")),
        "{body}"
    );
    assert_eq!(get(&sm.url, "/v1/lanes/L03", Some(TOKEN)).await.0, 200);
    let (status, body) = get(&sm.url, "/v1/lanes/L04", Some(TOKEN)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = get(&sm.url, "/v1/lanes/L09", Some(OFFICE)).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &Value::from("unknown_lane")),
        "{body}"
    );
    let (status, body) = get(&sm.url, "/v1/lanes/no%20such", Some(OFFICE)).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &Value::from("invalid_lane_id")),
        "{body}"
    );
    // A reader's token posts nothing and beats for no lane.
    let office_put = put_as(&sm.url, "sales", &j.next(), OFFICE).await;
    assert_eq!(
        (office_put.status, &office_put.body["code"]),
        (403, &Value::from("office_token")),
        "{}",
        office_put.body
    );
    let office_closing = put_as(&sm.url, "closings", &j.closing(1), OFFICE).await;
    assert_eq!(office_closing.status, 403, "{}", office_closing.body);
    let (status, _) = get(&sm.url, "/v1/heartbeat?lane_id=L03", Some(OFFICE)).await;
    assert_eq!(status, 403);
    // A browser is asked to sign in, and signs in with the reader's token
    // as its password.
    let r = common::client()
        .get(format!("{}/", sm.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let asks = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(asks.starts_with("Basic "), "{asks}");
    let r = common::client()
        .get(format!("{}/", sm.url))
        .basic_auth("anyone", Some(OFFICE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"lane-L03\" data-status=\"ok\""),
        "{html}"
    );
    let r = common::client()
        .get(format!("{}/lanes/L03", sm.url))
        .basic_auth("anyone", Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    sm.stop().await;
}

/// Head office's page in a real headless Chromium: three lanes, the
/// forked one first, then the one missing a sale, then the one with
/// nothing to do; the missing sale's lane opens on its missing receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_lanes_worst_first_and_opens_a_lane_on_its_missing_receipts() {
    use common::browser;
    let Some((driver_path, chrome)) = browser::browser() else {
        return;
    };
    let b = sqlite();
    let clock = Arc::new(ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap()));
    let sm = Salemap::start_with(
        b.db.clone(),
        Lanes::AnyLane,
        "127.0.0.1:0".parse().unwrap(),
        clock.clone(),
        laned::salemap::office::DEFAULT_CEILING,
    )
    .await;
    // L01 holds everything; L02 misses receipt 2; L03 forks.
    let mut l01 = Journal::of("L01", "L01");
    for _ in 0..2 {
        assert_eq!(put(&sm.url, &l01.next()).await.status, 201);
    }
    let mut l02 = Journal::of("L02", "L02");
    let l02_docs: Vec<Doc> = (0..3).map(|_| l02.next()).collect();
    for d in [&l02_docs[0], &l02_docs[2]] {
        assert_eq!(put(&sm.url, d).await.status, 201);
    }
    let mut l03 = Journal::of("L03", "L03");
    assert_eq!(put(&sm.url, &l03.next()).await.status, 201);
    let mut copy = l03.clone_journal();
    assert_eq!(put(&sm.url, &l03.next()).await.status, 201);
    assert_eq!(put(&sm.url, &copy.next()).await.status, 422);
    clock.advance(Duration::from_secs(3 * 3600));

    let (_driver, web, _profile) =
        browser::open(driver_path, &chrome, "en-US,en", &format!("{}/", sm.url)).await;
    let text = |css: &'static str| {
        let web = web.clone();
        async move { browser::text(&web, css).await }
    };
    assert_eq!(text("#headline").await, "2 of 3 lanes need attention");
    assert_eq!(text("#count-chain_conflict .value").await, "1");
    assert_eq!(text("#count-old_hole .value").await, "1");
    assert_eq!(text("#count-ok .value").await, "1");
    let mut order = Vec::new();
    for row in web
        .find_all(fantoccini::Locator::Css("#lanes tbody tr"))
        .await
        .unwrap()
    {
        order.push((
            row.attr("id").await.unwrap().unwrap_or_default(),
            row.attr("data-status").await.unwrap().unwrap_or_default(),
        ));
    }
    let order: Vec<(&str, &str)> = order
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("lane-L03", "chain_conflict"),
            ("lane-L02", "old_hole"),
            ("lane-L01", "ok")
        ]
    );
    let l02_row = text("#lane-L02").await;
    assert!(l02_row.contains("receipt 2"), "{l02_row}");
    assert!(l02_row.contains("for 3 h"), "{l02_row}");
    assert!(l02_row.contains("status page"), "{l02_row}");
    // One screen wide on an office laptop.
    assert!(browser::fits(&web).await);
    browser::screenshot(&web, "office_page", "office-page.png").await;

    // The lane's own page, from its link.
    web.find(fantoccini::Locator::Css("#lane-L02 a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text("#headline").await, "Lane L02: Sales missing");
    let hole = text("#holes tbody tr").await;
    assert!(hole.starts_with("L02 2 3 h"), "{hole}");
    assert_eq!(text("#no-conflicts").await, "None.");
    web.close().await.unwrap();
    sm.stop().await;
}
