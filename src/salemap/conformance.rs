//! The conformance kit: the back-end contract's properties (docs/backend-contract.md,
//! docs/backend-contract.md) run against any back-end, for ERP teams who
//! implement it themselves. `salemap conformance --url URL --token T
//! --lane L` prints the table; every check posts under a fresh receipt
//! series of its own, so the kit can run against a back-end in use.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::contract::{IDEMPOTENCY_KEY, IDEMPOTENCY_REPLAYED};

/// One property and whether the back-end has it.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// All the checks of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// Every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn record(&mut self, name: &'static str, result: Result<String, String>) {
        let (passed, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.checks.push(Check {
            name,
            passed,
            detail,
        });
    }

    /// The table, for a terminal.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        let mut out = format!("{:width$}  result  detail\n", "check");
        for c in &self.checks {
            let r = if c.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("{:width$}  {r:6}  {}\n", c.name, c.detail));
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        out.push_str(&if failed == 0 {
            format!("all {} checks passed\n", self.checks.len())
        } else {
            format!("{failed} of {} checks FAILED\n", self.checks.len())
        });
        out
    }
}

/// Why the kit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The URL is not usable.
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
}

/// An answer, as far as the checks need it.
struct Answer {
    status: u16,
    replayed: bool,
    body: Value,
}

struct Kit {
    http: reqwest::Client,
    base: String,
    token: String,
    lane: String,
}

/// A sale that passes the lane's own rules.
fn sale(total_units: i64) -> Value {
    let amount = 100 * total_units;
    json!({
        "kind": "sale", "references": null, "business_date": "2026-11-22",
        "occurred_at": "2026-11-22T14:03:11+03:00", "currency": "KES", "cashier": "CONF",
        "lines": [{"sku": "CONFORMANCE", "name": "Conformance item", "quantity": total_units.to_string(),
                   "unit_price": 100, "discount": 0, "tax_code": "A", "amount": amount}],
        "payments": [{"payment_id": Uuid::new_v4(), "method": "cash", "amount": amount}],
        "total": amount, "change": 0,
        "till": {"invoice_no": "C1", "register": "CONF"}, "extra": {}
    })
}

impl Kit {
    fn envelope(&self, id: &str, series: &str, receipt_no: i64, units: i64) -> String {
        json!({
            "transaction_id": id, "lane_id": self.lane, "series": series,
            "receipt_no": receipt_no, "lane_seq": receipt_no,
            "recorded_at": crate::common::time::fmt_ts(jiff::Timestamp::now()),
            "sale": sale(units),
        })
        .to_string()
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Answer, String> {
        let r = rb
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("no answer: {}", e.without_url()))?;
        let status = r.status().as_u16();
        let replayed = r
            .headers()
            .get(IDEMPOTENCY_REPLAYED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let body = r.json().await.unwrap_or(Value::Null);
        Ok(Answer {
            status,
            replayed,
            body,
        })
    }

    async fn put(&self, id: &str, envelope: &str) -> Result<Answer, String> {
        self.put_to("sales", id, envelope).await
    }

    async fn put_closing(&self, id: &str, envelope: &str) -> Result<Answer, String> {
        self.put_to("closings", id, envelope).await
    }

    /// `PUT /v1/{collection}/{id}` with the id as the `Idempotency-Key`.
    async fn put_to(&self, collection: &str, id: &str, envelope: &str) -> Result<Answer, String> {
        self.send(
            self.http
                .put(format!("{}/v1/{collection}/{id}", self.base))
                .header(IDEMPOTENCY_KEY, id)
                .header("Content-Type", "application/json")
                .body(envelope.to_owned()),
        )
        .await
    }

    /// A sale of the fiscal journal (docs/journal.md): the envelope of
    /// [`Kit::envelope`] with `prev_hash` and the series' grand total
    /// after it.
    fn chained(
        &self,
        id: &str,
        series: &str,
        receipt_no: i64,
        units: i64,
        prev_hash: &str,
        grand_total: i64,
    ) -> String {
        json!({
            "transaction_id": id, "lane_id": self.lane, "series": series,
            "receipt_no": receipt_no, "lane_seq": receipt_no,
            "recorded_at": crate::common::time::fmt_ts(jiff::Timestamp::now()),
            "prev_hash": prev_hash, "grand_total": {"KES": grand_total},
            "sale": sale(units),
        })
        .to_string()
    }

    /// A day closing of `series` covering one sale of `units` whose bytes
    /// hash to `sale_hash` (its exact figures, docs/journal.md), numbered
    /// `closing_no`, next in the chain after that sale.
    fn closing(
        &self,
        id: &str,
        series: &str,
        closing_no: i64,
        units: i64,
        sale_hash: &str,
    ) -> String {
        use crate::contract::closing::{Closing, ClosingEnvelope, ClosingKind, Figures, SaleDoc};
        let mut figures = Figures::default();
        if let Ok(doc) = serde_json::from_value::<SaleDoc>(sale(units)) {
            figures.add(1, &doc, None);
        }
        let env = ClosingEnvelope {
            transaction_id: id.parse().unwrap_or_default(),
            lane_id: self.lane.clone(),
            series: series.to_owned(),
            kind: ClosingKind::Closing,
            closing_no,
            lane_seq: closing_no + 1,
            recorded_at: crate::common::time::fmt_ts(jiff::Timestamp::now()),
            prev_hash: sale_hash.to_owned(),
            grand_total: figures.net.clone(),
            closing: Closing {
                business_date: "2026-11-22".into(),
                covers_hash: sale_hash.to_owned(),
                figures,
                cash: BTreeMap::new(),
            },
        };
        serde_json::to_string(&env).unwrap_or_default()
    }

    async fn batch(&self, envelopes: &[String]) -> Result<Answer, String> {
        let body = format!(
            "{{\"lane_id\":{},\"sales\":[{}]}}",
            Value::from(self.lane.clone()),
            envelopes.join(",")
        );
        self.send(
            self.http
                .post(format!("{}/v1/sales:batch", self.base))
                .header("Content-Type", "application/json")
                .body(body),
        )
        .await
    }

    async fn heartbeat(&self) -> Result<Answer, String> {
        self.heartbeat_for(&self.lane).await
    }

    /// The heartbeat naming `lane`.
    async fn heartbeat_for(&self, lane: &str) -> Result<Answer, String> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/heartbeat", self.base))
            .map_err(|e| format!("bad URL: {e}"))?;
        url.query_pairs_mut().append_pair("lane_id", lane);
        self.send(self.http.get(url)).await
    }
}

fn expect_status(a: &Answer, want: u16, what: &str) -> Result<(), String> {
    if a.status == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {want}, got {} {}",
            a.status, a.body
        ))
    }
}

fn doc_no(a: &Answer) -> Option<&str> {
    a.body.get("doc_no").and_then(Value::as_str)
}

/// A fresh series for one check: no earlier run has used it.
fn series() -> String {
    format!("CONF{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// Runs every check against the back-end at `url`, as lane `lane` with
/// `token`.
pub async fn run(url: &str, token: &str, lane: &str) -> Result<Report, KitError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(KitError::BadUrl(url.to_owned()));
    }
    let kit = Kit {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(KitError::Client)?,
        base: url.trim_end_matches('/').to_owned(),
        token: token.to_owned(),
        lane: lane.to_owned(),
    };
    let mut report = Report::default();
    report.record("heartbeat", heartbeat(&kit).await);
    report.record("post then replay", post_then_replay(&kit).await);
    report.record("concurrent duplicates", concurrent_duplicates(&kit).await);
    report.record("payload mismatch", payload_mismatch(&kit).await);
    report.record("receipt number conflict", receipt_conflict(&kit).await);
    report.record("batch semantics", batch_semantics(&kit).await);
    report.record("gap-free document numbers", gap_free(&kit).await);
    report.record("heartbeat last receipt", heartbeat_last_receipt(&kit).await);
    report.record(
        "heartbeat names the lane",
        heartbeat_names_the_lane(&kit).await,
    );
    report.record("day closing", day_closing(&kit).await);
    report.record("signed acknowledgements", signed_acks(&kit).await);
    report.record("chain on intake", chain_on_intake(&kit).await);
    report.record("token required", token_required(&kit).await);
    Ok(report)
}

async fn heartbeat(kit: &Kit) -> Result<String, String> {
    let a = kit.heartbeat().await?;
    expect_status(&a, 200, "GET /v1/heartbeat")?;
    let t = a.body.get("server_time").and_then(Value::as_str);
    match t.map(str::parse::<jiff::Timestamp>) {
        Some(Ok(t)) => Ok(format!("server_time {t}")),
        _ => Err(format!("server_time missing or not RFC 3339: {}", a.body)),
    }
}

async fn post_then_replay(kit: &Kit) -> Result<String, String> {
    let id = Uuid::new_v4().to_string();
    let env = kit.envelope(&id, &series(), 1, 1);
    let first = kit.put(&id, &env).await?;
    expect_status(&first, 201, "first PUT")?;
    let doc = doc_no(&first).ok_or(format!("201 without doc_no: {}", first.body))?;
    let again = kit.put(&id, &env).await?;
    expect_status(&again, 200, "repeat PUT")?;
    if !again.replayed {
        return Err("the repeat lacks Idempotency-Replayed: true".into());
    }
    if again.body != first.body {
        return Err(format!(
            "the repeat's body differs: {} then {}",
            first.body, again.body
        ));
    }
    Ok(format!("201 then 200 replayed, doc_no {doc}"))
}

async fn concurrent_duplicates(kit: &Kit) -> Result<String, String> {
    let id = Uuid::new_v4().to_string();
    let env = kit.envelope(&id, &series(), 1, 1);
    let answers = super::join_all((0..20).map(|_| kit.put(&id, &env))).await;
    let mut created = 0;
    let mut bodies = vec![];
    for a in answers {
        let a = a?;
        match a.status {
            201 => created += 1,
            200 if a.replayed => {}
            // A back-end may ask the loser to come back (409 in_flight).
            409 => continue,
            s => return Err(format!("a duplicate got {s} {}", a.body)),
        }
        bodies.push(a.body);
    }
    if created != 1 {
        return Err(format!("{created} of 20 parallel duplicates were created"));
    }
    if bodies.iter().any(|b| *b != bodies[0]) {
        return Err("the duplicates' bodies differ".into());
    }
    Ok(format!(
        "20 parallel PUTs: 1 created, {} identical answers",
        bodies.len()
    ))
}

async fn payload_mismatch(kit: &Kit) -> Result<String, String> {
    let id = Uuid::new_v4().to_string();
    let s = series();
    let first = kit.put(&id, &kit.envelope(&id, &s, 1, 1)).await?;
    expect_status(&first, 201, "first PUT")?;
    let other = kit.put(&id, &kit.envelope(&id, &s, 1, 2)).await?;
    expect_status(&other, 422, "same id, other sale")?;
    match other.body.get("code").and_then(Value::as_str) {
        Some("payload_mismatch") => Ok("422 payload_mismatch".into()),
        c => Err(format!("code {c:?}, expected payload_mismatch")),
    }
}

/// A day closing (docs/backend-contract.md §4.5) is stored once per id
/// with its bytes; a second closing in the same place of the lane's chain
/// is a forked journal.
async fn day_closing(kit: &Kit) -> Result<String, String> {
    let s = series();
    let sale_id = Uuid::new_v4().to_string();
    let sale_env = kit.chained(&sale_id, &s, 1, 1, crate::contract::journal::GENESIS, 100);
    let sale_hash = crate::contract::journal::hash(sale_env.as_bytes());
    let a = kit.put(&sale_id, &sale_env).await?;
    expect_status(&a, 201, "the day's sale")?;
    let id = Uuid::new_v4().to_string();
    let env = kit.closing(&id, &s, 1, 1, &sale_hash);
    let first = kit.put_closing(&id, &env).await?;
    expect_status(&first, 201, "PUT /v1/closings/{id}")?;
    let doc = doc_no(&first).ok_or(format!("201 without doc_no: {}", first.body))?;
    let again = kit.put_closing(&id, &env).await?;
    expect_status(&again, 200, "the same closing again")?;
    if !again.replayed || again.body != first.body {
        return Err(format!(
            "the repeat is not a replay of the first answer: {} then {}",
            first.body, again.body
        ));
    }
    let other = kit
        .put_closing(&id, &kit.closing(&id, &s, 1, 2, &sale_hash))
        .await?;
    expect_status(&other, 422, "same id, other bytes")?;
    if other.body.get("code").and_then(Value::as_str) != Some("payload_mismatch") {
        return Err(format!("expected payload_mismatch, got {}", other.body));
    }
    let b = Uuid::new_v4().to_string();
    let twice = kit
        .put_closing(&b, &kit.closing(&b, &s, 1, 1, &sale_hash))
        .await?;
    expect_status(&twice, 422, "another id, same closing number")?;
    match twice.body.get("code").and_then(Value::as_str) {
        Some("chain_conflict") => Ok(format!(
            "201 ({doc}), 200 replayed, 422 payload_mismatch, 422 chain_conflict"
        )),
        c => Err(format!("code {c:?}, expected chain_conflict")),
    }
}

/// Every `201`/`200` carries an `ack` that verifies against the key of
/// `GET /v1/keys` (also in the heartbeat) over the documented bytes
/// (docs/backend-contract.md §4.7), and binds its own document only.
async fn signed_acks(kit: &Kit) -> Result<String, String> {
    use crate::contract::Keys;
    use crate::contract::ack::{Ack, Binding, Number, Pinned};
    let keys = kit
        .send(kit.http.get(format!("{}/v1/keys", kit.base)))
        .await?;
    expect_status(&keys, 200, "GET /v1/keys")?;
    let keys: Keys = serde_json::from_value(keys.body.clone())
        .map_err(|e| format!("GET /v1/keys: {e}: {}", keys.body))?;
    let key = Pinned::new(&keys.signing_key).map_err(|e| format!("GET /v1/keys: {e}"))?;
    let hb = kit.heartbeat().await?;
    if hb.body.get("signing_key") != Some(&json!(keys.signing_key)) {
        return Err(format!(
            "the heartbeat does not name the key of /v1/keys: {}",
            hb.body
        ));
    }
    let s = series();
    let docs: Vec<(String, String)> = (1..=2)
        .map(|n| {
            let id = Uuid::new_v4().to_string();
            let env = kit.envelope(&id, &s, n, 1);
            (id, env)
        })
        .collect();
    let check = |n: i64, env: &str, answer: &Value, what: &str| -> Result<(), String> {
        let ack: Ack = serde_json::from_value(answer.get("ack").cloned().unwrap_or_default())
            .map_err(|_| format!("{what}: no ack in {answer}"))?;
        let hash = crate::contract::journal::hash(env.as_bytes());
        let binding = Binding {
            tenant: &keys.tenant,
            lane_id: &kit.lane,
            series: &s,
            number: Number::Receipt(n),
            hash: &hash,
            doc_no: answer
                .get("doc_no")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            posted_at: answer
                .get("posted_at")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        };
        key.verify(&binding, &ack)
            .map_err(|e| format!("{what}: the ack {e}"))
    };
    let first = kit.put(&docs[0].0, &docs[0].1).await?;
    expect_status(&first, 201, "PUT")?;
    check(1, &docs[0].1, &first.body, "201")?;
    let again = kit.put(&docs[0].0, &docs[0].1).await?;
    expect_status(&again, 200, "the same PUT again")?;
    check(1, &docs[0].1, &again.body, "200 replay")?;
    if check(2, &docs[1].1, &first.body, "").is_ok() {
        return Err("the ack of receipt 1 also verifies for receipt 2".into());
    }
    let b = kit.batch(&[docs[1].1.clone()]).await?;
    let item = b
        .body
        .get("results")
        .and_then(|r| r.get(0))
        .cloned()
        .unwrap_or_default();
    check(2, &docs[1].1, &item, "batch item")?;
    Ok(format!(
        "key {} ({}): 201, 200 and batch acks verify, bound to their document",
        keys.signing_key.key_id, keys.tenant
    ))
}

/// A lane's chain (docs/backend-contract.md §4.6): a document ahead of its
/// predecessor is kept, a second document in one place of the chain is
/// `chain_conflict`, a grand total that does not follow is
/// `grand_total_mismatch`.
async fn chain_on_intake(kit: &Kit) -> Result<String, String> {
    use crate::contract::journal::{GENESIS, hash};
    let s = series();
    let mut prev = GENESIS.to_owned();
    let mut docs = vec![];
    for n in 1..=3 {
        let id = Uuid::new_v4().to_string();
        let env = kit.chained(&id, &s, n, 1, &prev, 100 * n);
        prev = hash(env.as_bytes());
        docs.push((id, env));
    }
    // 1, then 3 before 2 (kept: its predecessor comes later), then 2.
    for i in [0, 2, 1] {
        let a = kit.put(&docs[i].0, &docs[i].1).await?;
        expect_status(&a, 201, &format!("journal document {}", i + 1))?;
    }
    let first_hash = hash(docs[0].1.as_bytes());
    let fork_id = Uuid::new_v4().to_string();
    let fork = kit.chained(&fork_id, &s, 2, 2, &first_hash, 300);
    let a = kit.put(&fork_id, &fork).await?;
    expect_status(&a, 422, "a second document after document 1")?;
    if a.body.get("code").and_then(Value::as_str) != Some("chain_conflict") {
        return Err(format!("a fork: expected chain_conflict, got {}", a.body));
    }
    let wrong_id = Uuid::new_v4().to_string();
    let wrong = kit.chained(&wrong_id, &s, 4, 1, &prev, 12345);
    let a = kit.put(&wrong_id, &wrong).await?;
    expect_status(&a, 422, "a wrong grand total")?;
    match a.body.get("code").and_then(Value::as_str) {
        Some("grand_total_mismatch") => {
            Ok("out of order kept, 422 chain_conflict for a fork, 422 grand_total_mismatch".into())
        }
        c => Err(format!("code {c:?}, expected grand_total_mismatch")),
    }
}

async fn receipt_conflict(kit: &Kit) -> Result<String, String> {
    let s = series();
    let a = Uuid::new_v4().to_string();
    let first = kit.put(&a, &kit.envelope(&a, &s, 1, 1)).await?;
    expect_status(&first, 201, "first PUT")?;
    let b = Uuid::new_v4().to_string();
    let second = kit.put(&b, &kit.envelope(&b, &s, 1, 1)).await?;
    expect_status(&second, 422, "another id, same receipt number")?;
    match second.body.get("code").and_then(Value::as_str) {
        Some("receipt_no_conflict") => Ok("422 receipt_no_conflict".into()),
        c => Err(format!("code {c:?}, expected receipt_no_conflict")),
    }
}

async fn batch_semantics(kit: &Kit) -> Result<String, String> {
    let s = series();
    let ids: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();
    let envs: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| kit.envelope(id, &s, i as i64 + 1, 1))
        .collect();
    let first = kit.put(&ids[0], &envs[0]).await?;
    expect_status(&first, 201, "PUT before the batch")?;
    let a = kit.batch(&envs).await?;
    expect_status(&a, 200, "POST /v1/sales:batch")?;
    let results = a
        .body
        .get("results")
        .and_then(Value::as_array)
        .ok_or(format!("no results array: {}", a.body))?;
    let got: Vec<(Option<&str>, Option<u64>)> = results
        .iter()
        .map(|r| {
            (
                r.get("transaction_id").and_then(Value::as_str),
                r.get("status").and_then(Value::as_u64),
            )
        })
        .collect();
    let want: Vec<(Option<&str>, Option<u64>)> = vec![
        (Some(ids[0].as_str()), Some(200)),
        (Some(ids[1].as_str()), Some(201)),
        (Some(ids[2].as_str()), Some(201)),
    ];
    if got != want {
        return Err(format!("results {got:?}, expected replay then two posts"));
    }
    if results[0].get("doc_no") != first.body.get("doc_no") {
        return Err("the replayed item's doc_no differs from the PUT's".into());
    }
    // Sent again, the whole batch is replays with the same documents.
    let again = kit.batch(&envs).await?;
    let again_results = again.body.get("results").cloned().unwrap_or(Value::Null);
    let docs = |v: &Value| -> Vec<Option<String>> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r.get("doc_no").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    if docs(&again_results) != docs(&Value::Array(results.clone())) {
        return Err("a repeated batch answered other documents".into());
    }
    Ok("replay, post, post; repeated batch answers the same documents".into())
}

/// The number at the end of a document number, if it has one.
fn trailing_number(doc: &str) -> Option<u64> {
    let digits: String = doc
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

async fn gap_free(kit: &Kit) -> Result<String, String> {
    let s = series();
    let envs: Vec<(String, String)> = (1..=20)
        .map(|n| {
            let id = Uuid::new_v4().to_string();
            let e = kit.envelope(&id, &s, n, 1);
            (id, e)
        })
        .collect();
    let answers = super::join_all(envs.iter().map(|(id, e)| kit.put(id, e))).await;
    let mut docs = vec![];
    for a in answers {
        let a = a?;
        expect_status(&a, 201, "a new sale")?;
        docs.push(doc_no(&a).ok_or("201 without doc_no")?.to_owned());
    }
    let distinct: std::collections::BTreeSet<&String> = docs.iter().collect();
    if distinct.len() != docs.len() {
        return Err("two sales got the same document number".into());
    }
    let mut numbers: Vec<u64> = docs.iter().filter_map(|d| trailing_number(d)).collect();
    if numbers.len() != docs.len() {
        return Ok("20 distinct document numbers (not numeric: gaps not checked)".into());
    }
    numbers.sort_unstable();
    let contiguous = numbers.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous {
        Ok(format!(
            "20 parallel posts: numbers {}..{} without a gap",
            numbers[0],
            numbers[numbers.len() - 1]
        ))
    } else {
        Err(format!("document numbers with gaps: {numbers:?}"))
    }
}

async fn heartbeat_last_receipt(kit: &Kit) -> Result<String, String> {
    let s = series();
    for n in 1..=3 {
        let id = Uuid::new_v4().to_string();
        let a = kit.put(&id, &kit.envelope(&id, &s, n, 1)).await?;
        expect_status(&a, 201, "a new sale")?;
    }
    let hb = kit.heartbeat().await?;
    expect_status(&hb, 200, "GET /v1/heartbeat")?;
    let map: BTreeMap<String, i64> = hb
        .body
        .get("last_receipt_no")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    match map.get(&s) {
        Some(3) => Ok(format!("last_receipt_no[{s}] = 3")),
        other => Err(format!("last_receipt_no[{s}] = {other:?}, expected 3")),
    }
}

/// A heartbeat naming another lane must not answer with this lane's
/// numbers: refused (a token that belongs to one lane) or answered for that
/// other lane.
async fn heartbeat_names_the_lane(kit: &Kit) -> Result<String, String> {
    let s = series();
    let id = Uuid::new_v4().to_string();
    let a = kit.put(&id, &kit.envelope(&id, &s, 1, 1)).await?;
    expect_status(&a, 201, "a new sale")?;
    let other = format!("CONF{}", &Uuid::new_v4().simple().to_string()[..8]);
    let hb = kit.heartbeat_for(&other).await?;
    match hb.status {
        403 => Ok(format!("lane_id={other}: 403, not this token's lane")),
        200 if hb.body["last_receipt_no"].get(&s).is_none() => {
            Ok(format!("lane_id={other}: answered for {other}"))
        }
        200 => Err(format!(
            "lane_id={other} answered with lane {}'s series {s}: the back-end ignores lane_id",
            kit.lane
        )),
        st => Err(format!(
            "lane_id={other}: expected 403 or 200, got {st} {}",
            hb.body
        )),
    }
}

async fn token_required(kit: &Kit) -> Result<String, String> {
    let id = Uuid::new_v4().to_string();
    let env = kit.envelope(&id, &series(), 1, 1);
    let r = kit
        .http
        .put(format!("{}/v1/sales/{id}", kit.base))
        .header("Content-Type", "application/json")
        .body(env)
        .send()
        .await
        .map_err(|e| format!("no answer: {}", e.without_url()))?;
    match r.status().as_u16() {
        401 => Ok("401 without a token".into()),
        s => Err(format!("a PUT without a token got {s}, expected 401")),
    }
}
