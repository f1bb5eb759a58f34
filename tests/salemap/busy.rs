//! Back-pressure (docs/backend-contract.md §6, "Overload"): salemap works on
//! a bounded number of posting requests at once and lets a bounded number
//! wait; every other request is answered `429 busy` at once, with a
//! `Retry-After`, before its body is read, so nothing of it is posted and
//! sending it again is always safe. A storm of lanes therefore ends with
//! every sale posted once and every series numbered 1..n, and no `503`.

use crate::common;

use std::sync::{Arc, Mutex, mpsc};

use common::salemap::{Salemap, envelope};
use laned::common::clock::SystemClock;
use laned::salemap::admission::{Limits, MAX_RETRY_AFTER};
use laned::salemap::{Database, Lanes};
use serde_json::Value;
use uuid::Uuid;

/// A batch of `lane`'s receipts `numbers`, as a lane sends it.
fn batch_body(lane: &str, numbers: std::ops::RangeInclusive<i64>) -> String {
    let envs: Vec<String> = numbers
        .map(|n| envelope(&Uuid::new_v4().to_string(), lane, lane, n))
        .collect();
    format!("{{\"lane_id\":\"{lane}\",\"sales\":[{}]}}", envs.join(","))
}

struct Answer {
    status: u16,
    retry_after: Option<u32>,
    body: Value,
}

async fn send(http: &reqwest::Client, url: &str, body: &str) -> Answer {
    let r = http
        .post(format!("{url}/v1/sales:batch"))
        .bearer_auth("any")
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("batch");
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Answer {
        status: r.status().as_u16(),
        retry_after,
        body: r.json().await.expect("JSON"),
    }
}

/// The document numbers a batch answer gave, all `201`.
fn posted_numbers(a: &Answer) -> Vec<i64> {
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            assert_eq!(r["status"], 201, "{r}");
            r["doc_no"]
                .as_str()
                .and_then(|d| d.rsplit_once('/'))
                .and_then(|(_, n)| n.parse().ok())
                .expect("doc_no SERIES/NUMBER")
        })
        .collect()
}

/// The first posting transaction stops inside (its rows inserted, its
/// numbers taken) until released: a request that holds its place for as
/// long as the test wants. Returns "it is inside" and "let it go".
fn hold_first_post(sm: &Salemap) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered, inside) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    sm.store.inject_aborts(Some(Box::new(move |ordinal| {
        if ordinal == 1 {
            let _ = entered.send(());
            let _ = released
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .recv();
        }
        false
    })));
    (inside, release)
}

/// salemap on SQLite, any lane, working on one request at a time and
/// letting `waiting` more wait.
async fn start(waiting: usize) -> (tempfile::TempDir, Salemap) {
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start_limited(
        Database::Sqlite(dir.path().join("salemap.db")),
        Lanes::AnyLane,
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(SystemClock::new()),
        laned::salemap::office::DEFAULT_CEILING,
        Limits {
            in_flight: 1,
            waiting,
            wait: std::time::Duration::from_secs(30),
        },
    )
    .await;
    (dir, sm)
}

async fn wait_inside(inside: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || inside.recv())
        .await
        .expect("join")
        .expect("the held post is inside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_places_salemap_answers_busy_and_posts_nothing_of_the_refused_request() {
    let (_dir, sm) = start(0).await;
    let http = common::client();
    let (inside, release) = hold_first_post(&sm);
    let first = tokio::spawn({
        let (http, url) = (http.clone(), sm.url.clone());
        async move { send(&http, &url, &batch_body("L01", 1..=3)).await }
    });
    wait_inside(inside).await;

    // The one place is taken and nobody may wait: a batch, a single sale
    // and a heartbeat are refused at once.
    let second = batch_body("L01", 4..=6);
    let busy = send(&http, &sm.url, &second).await;
    assert_eq!(busy.status, 429, "{}", busy.body);
    assert_eq!(busy.body["code"], "busy", "{}", busy.body);
    let retry = busy.retry_after.expect("Retry-After");
    assert!((1..=MAX_RETRY_AFTER).contains(&retry), "{retry}");
    assert_eq!(busy.body["details"]["retry_after_seconds"], retry);
    let id = Uuid::new_v4().to_string();
    let put = http
        .put(format!("{}/v1/sales/{id}", sm.url))
        .header("Content-Type", "application/json")
        .body(envelope(&id, "L02", "L02", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 429);
    assert!(put.headers().contains_key("retry-after"));
    let hb = http
        .get(format!("{}/v1/heartbeat?lane_id=L01", sm.url))
        .send()
        .await
        .unwrap();
    assert_eq!(hb.status(), 429);
    // Reads do not queue behind posting.
    let metrics = http
        .get(format!("{}/metrics", sm.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "salemap_in_flight_requests 1",
        "salemap_in_flight_limit 1",
        "salemap_busy_refusals_total 3",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    release.send(()).unwrap();
    assert_eq!(posted_numbers(&first.await.unwrap()), [1, 2, 3]);
    // Nothing of the refused batch was kept: sent again, every sale is new
    // (201, not a replay) and the numbers follow on without a gap.
    assert_eq!(
        posted_numbers(&send(&http, &sm.url, &second).await),
        [4, 5, 6]
    );
    sm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_lanes_ends_with_every_sale_posted_once_and_no_503() {
    const LANES: usize = 40;
    let (_dir, sm) = start(1).await;
    let http = common::client();
    let (inside, release) = hold_first_post(&sm);
    let bodies: Vec<String> = (0..LANES)
        .map(|l| batch_body(&format!("S{l:02}"), 1..=5))
        .collect();
    let first = tokio::spawn({
        let (http, url, body) = (http.clone(), sm.url.clone(), bodies[0].clone());
        async move { send(&http, &url, &body).await }
    });
    wait_inside(inside).await;
    // The rest of the fleet arrives at once: one may wait, the others are
    // refused while the first holds its place.
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for (l, body) in bodies.iter().enumerate().skip(1) {
        let (http, url, body, answered) =
            (http.clone(), sm.url.clone(), body.clone(), answered.clone());
        tokio::spawn(async move {
            let _ = answered.send((l, send(&http, &url, &body).await));
        });
    }
    drop(answered);
    let mut refused = vec![];
    while refused.len() < LANES - 2 {
        let (l, a) = answers.recv().await.expect("an answer");
        assert_eq!(a.status, 429, "lane {l}: {}", a.body);
        assert!(
            a.retry_after
                .is_some_and(|r| (1..=MAX_RETRY_AFTER).contains(&r))
        );
        refused.push(l);
    }
    release.send(()).unwrap();
    let mut numbers = vec![posted_numbers(&first.await.unwrap())];
    // The one that waited is served once the first is done.
    let (waited, a) = answers.recv().await.expect("the waiting lane's answer");
    assert!(!refused.contains(&waited));
    numbers.push(posted_numbers(&a));
    // The refused send again (after their Retry-After, in a lane; at once
    // here, one at a time) and each is posted now, once.
    for l in refused {
        let a = send(&http, &sm.url, &bodies[l]).await;
        numbers.push(posted_numbers(&a));
    }
    assert_eq!(numbers.len(), LANES);
    for n in numbers {
        assert_eq!(n, [1, 2, 3, 4, 5], "every series numbered 1..n");
    }
    sm.stop().await;
}
