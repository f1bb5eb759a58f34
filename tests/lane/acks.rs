//! Signed acknowledgements on the lane (docs/backend-contract.md, "Signed
//! acknowledgements"): the back-end's key pinned at first contact or
//! configured, every posted answer's signature checked against it, and a
//! forged one a lane-level fault that takes nothing as posted.

use crate::common;

use std::time::Duration;

use common::backend::{Backend, Forgery};
use common::salemap::Salemap;
use common::{Lane, seed};
use laned::contract::ack::{Ack, Binding, Number, Pinned, PublicKey, Signing};
use laned::salemap::Lanes;
use serde_json::{Value, json};

const TOKEN: &str = "lane-token-5f1e";

/// A lane delivering to `url`, retrying only when a test asks.
fn config_for(dir: &std::path::Path, url: &str) -> laned::lane::config::Config {
    let mut cfg = common::config_with_backend(dir, url, TOKEN);
    cfg.drain.backoff_base = Duration::from_secs(3600);
    cfg.drain.backoff_cap = Duration::from_secs(3600);
    cfg
}

/// Every posted document of the lane at `dir` with its stored ack:
/// (series, number, exact bytes, doc_no, posted_at, ack JSON).
type Kept = (String, Number, Vec<u8>, String, String, Option<String>);

fn kept(dir: &std::path::Path) -> Vec<Kept> {
    let conn = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).unwrap();
    let mut out = vec![];
    for (sql, closing) in [
        (
            "SELECT series, receipt_no, body, doc_no, posted_at, ack FROM sales
             WHERE state = 'posted' ORDER BY seq",
            false,
        ),
        (
            "SELECT series, closing_no, body, doc_no, posted_at, ack FROM closings
             WHERE state = 'posted' ORDER BY seq",
            true,
        ),
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| {
                let n: i64 = r.get(1)?;
                Ok((
                    r.get(0)?,
                    if closing {
                        Number::Closing(n)
                    } else {
                        Number::Receipt(n)
                    },
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

/// The key the lane at `dir` pinned: (tenant, key, source).
fn pinned(dir: &std::path::Path) -> Option<(String, PublicKey, String)> {
    let conn = rusqlite::Connection::open(dir.join(laned::lane::store::DB_FILE)).unwrap();
    conn.query_row(
        "SELECT tenant, key_id, public_key, source FROM backend_key",
        [],
        |r| {
            Ok((
                r.get(0)?,
                PublicKey {
                    key_id: r.get(1)?,
                    algorithm: "ed25519".into(),
                    public_key: r.get(2)?,
                },
                r.get(3)?,
            ))
        },
    )
    .ok()
}

/// Checks every kept acknowledgement against `key`, as an auditor would
/// from the lane's database alone.
fn assert_all_verify(dir: &std::path::Path, tenant: &str, key: &PublicKey) -> usize {
    let key = Pinned::new(key).unwrap();
    let docs = kept(dir);
    for (series, number, body, doc_no, posted_at, ack) in &docs {
        let ack: Ack = serde_json::from_str(ack.as_deref().expect("an ack is kept")).unwrap();
        let hash = laned::contract::journal::hash(body);
        let b = Binding {
            tenant,
            lane_id: "L03",
            series,
            number: *number,
            hash: &hash,
            doc_no,
            posted_at,
        };
        key.verify(&b, &ack)
            .unwrap_or_else(|e| panic!("{number:?}: {e}"));
    }
    docs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lane_pins_salemaps_key_and_keeps_a_verified_ack_for_every_document() {
    let dir = tempfile::tempdir().unwrap();
    let sm = Salemap::start(&dir.path().join("salemap.db"), Lanes::single("L03", TOKEN)).await;
    let (_, salemap_key, _) = common::salemap::keys(&sm.url, TOKEN).await;
    let lane_dir = dir.path().join("lane");
    let lane = Lane::start_with(config_for(&lane_dir, &sm.url)).await;
    lane.ring(3).await;
    let r = lane
        .http
        .post(format!("{}/v1/admin/close-day", lane.base))
        .bearer_auth(&lane.admin_token)
        .json(&json!({"business_date": "2026-11-22"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    lane.until("the sales and the closing posted", || async {
        kept(&lane_dir).len() == 4
    })
    .await;
    lane.stop().await;
    let (tenant, key, source) = pinned(&lane_dir).expect("a key is pinned");
    assert_eq!(
        (tenant.as_str(), source.as_str()),
        ("default", "first_contact")
    );
    assert_eq!(key, salemap_key);
    assert_eq!(assert_all_verify(&lane_dir, &tenant, &key), 4);
    // salemap holds the day unbroken through the closing: the lane keeps
    // its day certificate, which verifies from the database alone.
    let conn = rusqlite::Connection::open(lane_dir.join(laned::lane::store::DB_FILE)).unwrap();
    let (body, closing_no, business_date, certificate): (Vec<u8>, i64, String, Option<String>) =
        conn.query_row(
            "SELECT body, closing_no, business_date, certificate FROM closings",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let cert: laned::contract::ack::DayCertificate =
        serde_json::from_str(certificate.as_deref().expect("a day certificate")).unwrap();
    let closing_hash = laned::contract::journal::hash(&body);
    Pinned::new(&key)
        .unwrap()
        .verify_certificate(
            &laned::contract::ack::DayBinding {
                tenant: &tenant,
                lane_id: "L03",
                series: "L03",
                closing_no,
                business_date: &business_date,
                closing_hash: &closing_hash,
                certified_at: &cert.certified_at,
            },
            &cert,
        )
        .unwrap();
    drop(conn);
    // The same key after a restart of salemap: it kept its key file.
    let (db, lanes, addr) = sm.stop().await;
    let sm = Salemap::start_at(db, lanes, addr).await;
    let lane = Lane::start_with(config_for(&lane_dir, &sm.url)).await;
    // The day closed: the next sale is of the next business day.
    let mut next_day = common::sale();
    next_day["business_date"] = json!("2026-11-23");
    let (code, body) = lane.put(&uuid::Uuid::new_v4().to_string(), &next_day).await;
    assert_eq!(code, 201, "{body}");
    lane.until("the fifth posted", || async { kept(&lane_dir).len() == 5 })
        .await;
    assert_eq!(lane.status().await["backend"]["fault"], Value::Null);
    lane.stop().await;
    assert_eq!(assert_all_verify(&lane_dir, &tenant, &key), 5);
    sm.stop().await;
}

/// Each way of forging an acknowledgement, in an order and with a batch
/// size drawn from a seed: the lane takes nothing as posted, pauses with
/// `bad_ack`, and resumes once the back-end signs honestly again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_ack_is_a_lane_fault_and_nothing_is_taken_as_posted() {
    use rand::{RngExt, SeedableRng};
    let seed = seed("a_forged_ack_is_a_lane_fault_and_nothing_is_taken_as_posted");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let key = Signing::from_seed(&[9; 32]);
    backend.sign_with(Some(key.clone()));
    let mut cfg = config_for(dir.path(), &backend.url);
    cfg.drain.batch_size = rng.random_range(1..=3);
    let lane = Lane::start_with(cfg).await;
    // A first honest round pins the key (and is the ack a replay reuses).
    lane.ring(1).await;
    lane.until("the first posted", || async { kept(dir.path()).len() == 1 })
        .await;
    let mut forgeries = vec![
        (
            "wrong key",
            Forgery::OtherKey(Box::new(Signing::from_seed(&[10; 32]))),
        ),
        ("a byte changed", Forgery::ByteChanged),
        ("replayed for another sale", Forgery::Replayed),
        ("missing", Forgery::Missing),
    ];
    for i in (1..forgeries.len()).rev() {
        forgeries.swap(i, rng.random_range(0..=i));
    }
    let mut total = 1;
    for (name, forgery) in forgeries {
        backend.forge(Some(forgery));
        let n = rng.random_range(1..=3);
        let ids = lane.ring(n).await;
        lane.until(name, || async {
            lane.status().await["backend"]["fault"]["code"] == "bad_ack"
        })
        .await;
        for id in &ids {
            assert_eq!(
                lane.sale_state(id).await,
                "pending",
                "{name}: a sale was taken as posted (seed {seed})"
            );
        }
        assert_eq!(kept(dir.path()).len(), total, "{name} (seed {seed})");
        // Honest again: the same sales are re-sent, answered as replays,
        // and posted with their own acks.
        backend.forge(None);
        assert_eq!(lane.sync_now().await, 202);
        total += n;
        lane.until("the sales posted after the forgery", || async {
            kept(dir.path()).len() == total
        })
        .await;
        assert_eq!(lane.status().await["backend"]["fault"], Value::Null);
        let (tenant, pinned_key, _) = pinned(dir.path()).unwrap();
        assert_eq!(&pinned_key, key.public());
        assert_eq!(
            assert_all_verify(dir.path(), &tenant, &pinned_key),
            total,
            "seed {seed}"
        );
    }
    // Every sale went once to the back-end's map however often it was sent.
    assert!(
        backend.post_counts().values().all(|n| *n == 1),
        "seed {seed}"
    );
    lane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_end_that_changes_its_key_or_another_than_configured_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::start(Some(TOKEN)).await;
    let first = Signing::from_seed(&[1; 32]);
    backend.sign_with(Some(first.clone()));
    let lane = Lane::start_with(config_for(dir.path(), &backend.url)).await;
    let ids = lane.ring(1).await;
    lane.until("posted", || async {
        lane.sale_state(&ids[0]).await == "posted"
    })
    .await;
    // Another key: the heartbeat already shows it, and no sale goes.
    backend.sign_with(Some(Signing::from_seed(&[2; 32])));
    let ids = lane.ring(1).await;
    assert_eq!(lane.sync_now().await, 202);
    lane.until("the new key refused, naming the pinned one", || async {
        let st = lane.status().await;
        st["backend"]["fault"]["code"] == "bad_ack"
            && st["backend"]["fault"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&first.public().key_id))
    })
    .await;
    assert_eq!(lane.sale_state(&ids[0]).await, "pending");
    // A back-end that stops signing is refused too.
    backend.sign_with(None);
    assert_eq!(lane.sync_now().await, 202);
    lane.until("unsigned answers refused", || async {
        let st = lane.status().await;
        st["backend"]["fault"]["code"] == "bad_ack"
            && st["backend"]["fault"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("without its signature"))
    })
    .await;
    assert_eq!(lane.sale_state(&ids[0]).await, "pending");
    lane.stop().await;

    // The configured key decides, whatever was pinned: the lane restarted
    // with backend_key set to the second key takes its signatures.
    backend.sign_with(Some(Signing::from_seed(&[2; 32])));
    let mut cfg = config_for(dir.path(), &backend.url);
    cfg.drain.backend_key = Some(Signing::from_seed(&[2; 32]).public().clone());
    let lane = Lane::start_with(cfg).await;
    lane.until("posted under the configured key", || async {
        lane.sale_state(&ids[0]).await == "posted"
    })
    .await;
    lane.stop().await;
    let (_, key, source) = pinned(dir.path()).unwrap();
    assert_eq!(
        (&key, source.as_str()),
        (Signing::from_seed(&[2; 32]).public(), "config")
    );
    // And a back-end signing with another than the configured key is
    // refused from the first heartbeat.
    let other = tempfile::tempdir().unwrap();
    let mut cfg = config_for(other.path(), &backend.url);
    cfg.drain.backend_key = Some(Signing::from_seed(&[3; 32]).public().clone());
    let lane = Lane::start_with(cfg).await;
    let ids = lane.ring(1).await;
    lane.until("another key than configured refused", || async {
        lane.status().await["backend"]["fault"]["code"] == "bad_ack"
    })
    .await;
    assert_eq!(lane.sale_state(&ids[0]).await, "pending");
    assert!(pinned(other.path()).is_none());
    lane.stop().await;
}
