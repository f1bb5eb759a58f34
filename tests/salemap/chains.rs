//! salemap as the witness (docs/backend-contract.md, "Chains" and "Signed
//! acknowledgements"): each lane's journal checked on intake, a forked lane
//! refused as `chain_conflict`, a grand total that does not follow refused,
//! a document that arrives before its predecessor kept and counted, and
//! every posted answer signed over what it binds. On SQLite and PostgreSQL.

use crate::common;

use std::collections::BTreeMap;

use common::salemap::{Salemap, envelope_of};
use laned::contract::ack::{Ack, Binding, Number};
use laned::contract::journal::{GENESIS, hash};
use laned::salemap::Lanes;
use serde_json::{Value, json};
use uuid::Uuid;

use super::posting::{Backing, both, postgres, sqlite};

pub(super) const TOKEN: &str = "lane-L03-token";

both!(
    a_journal_links_on_intake_and_a_document_ahead_of_its_predecessor_is_counted,
    a_forked_lane_is_refused_unless_it_numbers_above_everything_held,
    a_grand_total_that_does_not_follow_or_a_link_out_of_lane_order_is_refused,
    every_posted_answer_carries_an_ack_over_what_it_binds,
    a_day_is_certified_once_every_document_through_its_closing_is_held,
);

/// A lane's journal as a test writes it: each document links to the one
/// before and carries the running grand total.
pub(super) struct Journal {
    lane: String,
    series: String,
    last: String,
    total: i64,
    seq: i64,
    receipt: i64,
}

/// One document: its id, its exact bytes, its hash.
#[derive(Clone)]
pub(super) struct Doc {
    pub(super) id: String,
    pub(super) env: String,
    pub(super) hash: String,
    pub(super) receipt: i64,
}

impl Journal {
    pub(super) fn new(series: &str) -> Journal {
        Journal::of("L03", series)
    }

    /// Lane `lane`'s journal in `series`.
    pub(super) fn of(lane: &str, series: &str) -> Journal {
        Journal {
            lane: lane.into(),
            series: series.into(),
            last: GENESIS.into(),
            total: 0,
            seq: 0,
            receipt: 0,
        }
    }

    /// The next sale, linked, with this grand total (`None`: the right one).
    pub(super) fn next_with(&mut self, total: Option<i64>, prev: Option<&str>) -> Doc {
        let sale = common::sale();
        let amount = sale["total"].as_i64().unwrap();
        self.seq += 1;
        self.receipt += 1;
        let right = self.total + amount;
        let id = Uuid::new_v4().to_string();
        let mut v: Value = serde_json::from_str(&envelope_of(
            &id,
            &self.lane,
            &self.series,
            self.receipt,
            sale,
        ))
        .unwrap();
        v["lane_seq"] = json!(self.seq);
        v["prev_hash"] = json!(prev.unwrap_or(&self.last));
        v["grand_total"] = json!({"KES": total.unwrap_or(right)});
        let env = v.to_string();
        let h = hash(env.as_bytes());
        self.last = h.clone();
        self.total = right;
        Doc {
            id,
            env,
            hash: h,
            receipt: self.receipt,
        }
    }

    pub(super) fn next(&mut self) -> Doc {
        self.next_with(None, None)
    }

    /// A closing of 2026-11-22 next in the chain, numbered `closing_no`.
    /// (salemap does not recount a closing's figures; these are empty.)
    pub(super) fn closing(&mut self, closing_no: i64) -> Doc {
        use laned::contract::closing::{Closing, ClosingEnvelope, ClosingKind, Figures};
        self.seq += 1;
        let id = Uuid::new_v4();
        let env = ClosingEnvelope {
            transaction_id: id,
            lane_id: self.lane.clone(),
            series: self.series.clone(),
            kind: ClosingKind::Closing,
            closing_no,
            lane_seq: self.seq,
            recorded_at: "2026-11-22T21:30:00.000Z".into(),
            prev_hash: self.last.clone(),
            grand_total: BTreeMap::from([("KES".into(), self.total)]),
            closing: Closing {
                business_date: "2026-11-22".into(),
                covers_hash: self.last.clone(),
                figures: Figures::default(),
                cash: BTreeMap::new(),
            },
        };
        let env = serde_json::to_string(&env).unwrap();
        let h = hash(env.as_bytes());
        self.last = h.clone();
        Doc {
            id: id.to_string(),
            env,
            hash: h,
            receipt: closing_no,
        }
    }
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
}

pub(super) async fn put(url: &str, d: &Doc) -> Answer {
    put_to(url, "sales", d).await
}

pub(super) async fn put_to(url: &str, collection: &str, d: &Doc) -> Answer {
    put_as(url, collection, d, TOKEN).await
}

/// `d` PUT into `collection` with `token`.
pub(super) async fn put_as(url: &str, collection: &str, d: &Doc, token: &str) -> Answer {
    let r = common::client()
        .put(format!("{url}/v1/{collection}/{}", d.id))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(d.env.clone())
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        body: r.json().await.unwrap(),
    }
}

pub(super) async fn batch(url: &str, docs: &[&Doc]) -> Vec<Value> {
    let body = format!(
        "{{\"lane_id\":\"L03\",\"sales\":[{}]}}",
        docs.iter()
            .map(|d| d.env.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let r: Value = common::client()
        .post(format!("{url}/v1/sales:batch"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["results"].as_array().cloned().unwrap_or_default()
}

/// (out_of_order, forked) of each held document, by id.
async fn flags(db: &laned::salemap::Database) -> BTreeMap<String, (bool, bool)> {
    match db {
        laned::salemap::Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut st = conn
                .prepare("SELECT transaction_id, out_of_order, forked FROM links")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }
        laned::salemap::Database::Postgres { url, .. } => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query(
                    "SELECT transaction_id, out_of_order, forked FROM links",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect()
        }
    }
}

async fn a_journal_links_on_intake_and_a_document_ahead_of_its_predecessor_is_counted(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let mut j = Journal::new("L03");
    let docs: Vec<Doc> = (0..5).map(|_| j.next()).collect();
    // 1 and 2 in order; 4 before 3 (a stuck sale passed by park mode);
    // 5 in a batch with a replay of 4.
    for d in &docs[..2] {
        assert_eq!(put(&sm.url, d).await.status, 201);
    }
    assert_eq!(put(&sm.url, &docs[3]).await.status, 201);
    assert_eq!(put(&sm.url, &docs[2]).await.status, 201);
    let r = batch(&sm.url, &[&docs[3], &docs[4]]).await;
    let statuses: Vec<u64> = r.iter().map(|x| x["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 201], "{r:?}");
    let f = flags(&b.db).await;
    let early: Vec<&str> = docs
        .iter()
        .filter(|d| f[&d.id].0)
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(early, [docs[3].id.as_str()]);
    assert!(f.values().all(|(_, forked)| !forked));
    sm.stop().await;
}

async fn a_forked_lane_is_refused_unless_it_numbers_above_everything_held(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let mut j = Journal::new("L03");
    let docs: Vec<Doc> = (0..3).map(|_| j.next()).collect();
    for d in &docs {
        assert_eq!(put(&sm.url, d).await.status, 201);
    }
    // A copy restored after document 1 rings on: its document 2' follows
    // document 1, as document 2 does.
    let amount = common::sale()["total"].as_i64().unwrap();
    let after_first = |receipt: i64| {
        let mut copy = Journal::new("L03");
        copy.seq = 1;
        copy.receipt = receipt;
        copy.total = amount;
        copy.last = docs[0].hash.clone();
        copy
    };
    let forked = after_first(1).next();
    let r = put(&sm.url, &forked).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("chain_conflict")),
        "{}",
        r.body
    );
    assert_eq!(r.body["details"]["holder"], docs[1].id.as_str());
    assert_eq!(r.body["details"]["reason"], "forked");
    // The same in a batch, item by item; the rest of the batch posts.
    let mut more = j.clone_journal();
    let fourth = more.next();
    let r = batch(&sm.url, &[&forked, &fourth]).await;
    assert_eq!(r[0]["code"], "chain_conflict", "{r:?}");
    assert_eq!(r[1]["status"], 201, "{r:?}");
    // Acknowledged by support, the restored lane numbers on above head
    // office's last number (5 > 4): kept, and marked as a fork.
    let above = after_first(4).next();
    assert_eq!(above.receipt, 5);
    let r = put(&sm.url, &above).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let f = flags(&b.db).await;
    assert!(f[&above.id].1);
    assert!(!f.contains_key(&forked.id));
    sm.stop().await;
}

impl Journal {
    pub(super) fn clone_journal(&self) -> Journal {
        Journal {
            lane: self.lane.clone(),
            series: self.series.clone(),
            last: self.last.clone(),
            total: self.total,
            seq: self.seq,
            receipt: self.receipt,
        }
    }
}

async fn a_grand_total_that_does_not_follow_or_a_link_out_of_lane_order_is_refused(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let mut j = Journal::new("L03");
    let first = j.next();
    assert_eq!(put(&sm.url, &first).await.status, 201);
    let right = j.clone_journal().next();
    let wrong = j.clone_journal().next_with(Some(1), None);
    let r = put(&sm.url, &wrong).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("grand_total_mismatch")),
        "{}",
        r.body
    );
    let amount = common::sale()["total"].as_i64().unwrap();
    assert_eq!(r.body["details"]["expected"], json!({"KES": 2 * amount}));
    assert_eq!(r.body["details"]["found"], json!({"KES": 1}));
    // Nothing of it was kept: the right document takes its place.
    assert_eq!(put(&sm.url, &right).await.status, 201);
    // In one request, a document whose named predecessor comes after it in
    // lane order. (Against what is held, salemap looks for a predecessor
    // only before a document, so such a document counts as out of order.)
    let mut ahead = j.clone_journal();
    ahead.last = right.hash.clone();
    ahead.total = 2 * amount;
    ahead.seq = 10;
    ahead.receipt = 2;
    let later = ahead.next();
    let mut back = ahead.clone_journal();
    back.seq = 5;
    let early = back.next();
    let r = batch(&sm.url, &[&later, &early]).await;
    assert_eq!(r[0]["status"], 201, "{r:?}");
    assert_eq!(r[1]["code"], "chain_conflict", "{r:?}");
    assert!(
        r[1]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("comes at or after it"),
        "{r:?}"
    );
    sm.stop().await;
}

async fn every_posted_answer_carries_an_ack_over_what_it_binds(b: Backing) {
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let (tenant, public, key) = common::salemap::keys(&sm.url, TOKEN).await;
    // The heartbeat names the same key.
    let hb: Value = common::client()
        .get(format!("{}/v1/heartbeat?lane_id=L03", sm.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hb["signing_key"], json!(public));
    assert_eq!(hb["tenant"], tenant.as_str());
    let check = |d: &Doc, answer: &Value| -> Result<(), String> {
        let ack: Ack = serde_json::from_value(answer["ack"].clone()).map_err(|e| e.to_string())?;
        key.verify(
            &Binding {
                tenant: &tenant,
                lane_id: "L03",
                series: "L03",
                number: Number::Receipt(d.receipt),
                hash: &d.hash,
                doc_no: answer["doc_no"].as_str().unwrap_or_default(),
                posted_at: answer["posted_at"].as_str().unwrap_or_default(),
            },
            &ack,
        )
        .map_err(|e| e.to_string())
    };
    let mut j = Journal::new("L03");
    let (a, c) = (j.next(), j.next());
    let first = put(&sm.url, &a).await;
    assert_eq!(first.status, 201);
    check(&a, &first.body).unwrap();
    // A replay carries the same ack; it does not hold for another document.
    let again = put(&sm.url, &a).await;
    assert_eq!((again.status, &again.body), (200, &first.body));
    assert!(check(&c, &first.body).is_err());
    let r = batch(&sm.url, &[&a, &c]).await;
    check(&a, &r[0]).unwrap();
    check(&c, &r[1]).unwrap();
    sm.stop().await;
}

async fn a_day_is_certified_once_every_document_through_its_closing_is_held(b: Backing) {
    use laned::contract::ack::{DayBinding, DayCertificate};
    let sm = Salemap::start_on(b.db.clone(), Lanes::single("L03", TOKEN)).await;
    let (tenant, _, key) = common::salemap::keys(&sm.url, TOKEN).await;
    let mut j = Journal::new("L03");
    let sales: Vec<Doc> = (0..3).map(|_| j.next()).collect();
    let closing = j.closing(1);
    // The second sale is held back (a proxy, a stuck sale in park mode):
    // the closing is posted, not certified.
    for d in [&sales[0], &sales[2]] {
        assert_eq!(put(&sm.url, d).await.status, 201);
    }
    let first = put_to(&sm.url, "closings", &closing).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["certificate"], Value::Null, "{}", first.body);
    // It arrives: the chain is whole through the closing, which a repeat
    // now answers with its certificate.
    assert_eq!(put(&sm.url, &sales[1]).await.status, 201);
    let again = put_to(&sm.url, "closings", &closing).await;
    assert_eq!(again.status, 200, "{}", again.body);
    let cert: DayCertificate = serde_json::from_value(again.body["certificate"].clone())
        .unwrap_or_else(|e| panic!("{e}: {}", again.body));
    let day = DayBinding {
        tenant: &tenant,
        lane_id: "L03",
        series: "L03",
        closing_no: 1,
        business_date: "2026-11-22",
        closing_hash: &closing.hash,
        certified_at: &cert.certified_at,
    };
    key.verify_certificate(&day, &cert).unwrap();
    // A closing posted with its day whole is certified at once.
    let more = j.next();
    let next_closing = j.closing(2);
    assert_eq!(put(&sm.url, &more).await.status, 201);
    let r = put_to(&sm.url, "closings", &next_closing).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["certificate"].is_object(), "{}", r.body);
    sm.stop().await;
}
