//! The load: tills ringing sales through every intake style the till API
//! offers, each retrying the same request on a connection error, a
//! timeout or a `5xx` until it gets an answer, as `docs/till-api.md` tells
//! tills to. What each till was told (transaction id, receipt number) is
//! kept for the checker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

/// How a till hands a sale over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Style {
    /// `PUT /v1/sales/{id}` with an id the till minted.
    Put,
    /// `POST /v1/sales` with an `Idempotency-Key`.
    PostWithKey,
    /// `POST /v1/sales` with neither: the legacy duplicate rule (register,
    /// invoice number, time, kind and lines) makes a repeat harmless.
    PostLegacy,
}

const STYLES: [Style; 3] = [Style::Put, Style::PostWithKey, Style::PostLegacy];

/// A sale a till was told is recorded.
#[derive(Debug, Clone)]
pub struct Acked {
    pub transaction_id: String,
    pub receipt_no: i64,
    pub series: String,
    pub style: Style,
    /// When the till was told.
    pub at: std::time::Instant,
}

/// What the tills saw, for the checker and the report.
#[derive(Default)]
pub struct Ledger {
    pub acked: Vec<Acked>,
    /// Answers by status (every attempt), and failures without one.
    pub answers: BTreeMap<String, u64>,
    /// Answers a till does not expect for a valid sale.
    pub unexpected: Vec<String>,
    /// Sales refused with a code the attack expects (the sale was not
    /// recorded, and the till says so to the cashier).
    pub refused: BTreeMap<String, u64>,
}

/// Shared between the tills and the harness; the harness can wait for
/// what the tills see.
#[derive(Clone, Default)]
pub struct Shared(Arc<(Mutex<Ledger>, tokio::sync::Notify)>);

/// The ledger, locked; the harness's waiters look again when it is let go.
pub struct Locked<'a>(std::sync::MutexGuard<'a, Ledger>, &'a tokio::sync::Notify);

impl std::ops::Deref for Locked<'_> {
    type Target = Ledger;
    fn deref(&self) -> &Ledger {
        &self.0
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Ledger {
        &mut self.0
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.1.notify_waiters();
    }
}

impl Shared {
    pub fn lock(&self) -> Locked<'_> {
        Locked(
            self.0.0.lock().unwrap_or_else(|e| e.into_inner()),
            &self.0.1,
        )
    }

    /// Waits until `cond` holds of the ledger; two minutes without it is
    /// a hung run, which fails naming `what` it waited for.
    pub async fn until(&self, what: &str, cond: impl Fn(&Ledger) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(120), self.wait(cond)).await;
        assert!(waited.is_ok(), "the tills never saw {what} (two minutes)");
    }

    async fn wait(&self, cond: impl Fn(&Ledger) -> bool) {
        loop {
            let changed = self.0.1.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            // Read without the notifying guard: looking is not a change.
            if cond(&self.0.0.lock().unwrap_or_else(|e| e.into_inner())) {
                return;
            }
            changed.await;
        }
    }

    /// Everything seen so far (the tills have stopped).
    pub fn take(&self) -> Ledger {
        std::mem::take(&mut *self.lock())
    }

    fn answer(&self, what: String) {
        *self.lock().answers.entry(what).or_default() += 1;
    }
}

/// A valid sale, different for every till and number; one in fifty is a
/// big one (200 lines).
fn sale(till: u32, n: u64, big: bool) -> Value {
    let lines: Vec<Value> = (0..if big { 200 } else { 1 + n % 3 })
        .map(|i| {
            let price = 100 + ((n * 7 + i) % 900) as i64;
            json!({"sku": format!("T{till}-{n}-{i}"), "name": "Item", "quantity": "1",
                   "unit_price": price, "discount": 0, "tax_code": "A", "amount": price})
        })
        .collect();
    let total: i64 = lines.iter().filter_map(|l| l["amount"].as_i64()).sum();
    json!({
        "kind": "sale", "references": null, "business_date": "2026-11-22",
        "occurred_at": format!("2026-11-22T10:{:02}:{:02}+03:00", n / 60 % 60, n % 60),
        "currency": "KES", "cashier": format!("E{till:03}"),
        "lines": lines,
        "payments": [{"payment_id": Uuid::new_v4(), "method": "cash", "amount": total}],
        "total": total, "change": 0,
        "till": {"invoice_no": format!("{till}-{n:06}"), "register": format!("R{till}")},
        "extra": {}
    })
}

/// The body of a sale whose envelope for head office is this many bytes
/// under the contract's largest: accepted.
const FITS: i64 = 1_000;
/// ... or over it, although the body itself is under the 1 MiB a body may
/// be: refused at intake, never stuck at the back-end.
const TOO_BIG: i64 = -250;

/// A sale near the contract's largest envelope: `margin` bytes under it
/// (negative: over), estimating the envelope at the body plus 300 bytes;
/// unique to the till and number like every other.
fn huge(till: u32, n: u64, margin: i64) -> Value {
    let mut v = crate::common::big_sale(930, 0);
    v["till"] = json!({"invoice_no": format!("{till}-{n:06}"), "register": format!("R{till}")});
    v["occurred_at"] = json!(format!(
        "2026-11-22T11:{:02}:{:02}+03:00",
        n / 60 % 60,
        n % 60
    ));
    let len = serde_json::to_vec(&v).map_or(0, |b| b.len()) as i64;
    let target = laned::contract::MAX_ENVELOPE_BYTES as i64 - 300 - margin;
    v["extra"]["pad"] = json!("x".repeat(usize::try_from(target - len).unwrap_or(0)));
    v
}

/// What the harness tells a till about the lane at `base`.
pub struct Till {
    pub number: u32,
    pub base: String,
    pub seed: u64,
    pub ledger: Shared,
    pub stop: watch::Receiver<bool>,
    /// Refusals (`4xx` codes) the attack expects: the sale is not
    /// recorded, and the till goes on with the next one.
    pub tolerate: &'static [&'static str],
}

impl Till {
    /// Rings sales until told to stop; a sale under way when the stop comes
    /// is finished first (retried until answered).
    pub async fn run(mut self) {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(self.seed);
        let http = reqwest::Client::builder()
            .no_proxy()
            // Longer than the lane's wait for its start-up number check.
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let mut n = 0u64;
        while !*self.stop.borrow_and_update() {
            n += 1;
            let style = STYLES[rng.random_range(0..STYLES.len())];
            // One sale in a hundred is as big as a sale can be (its
            // envelope for head office just fits the contract's largest),
            // one in a hundred a little bigger: refused at intake with 413.
            let (body, refusal) = match rng.random_range(0..100) {
                0 => (huge(self.number, n, FITS), None),
                1 => (huge(self.number, n, TOO_BIG), Some("payload_too_large")),
                r => (sale(self.number, n, r < 4), None),
            };
            let id = Uuid::new_v4().to_string();
            let key = format!("till-{}-sale-{n}", self.number);
            if let Some(acked) = self.ring(&http, style, &body, &id, &key, refusal).await {
                self.ledger.lock().acked.push(acked);
            }
            // The cashier scans the next basket (a busy lane: tens of sales
            // a second across the tills, far more than a real store).
            tokio::time::sleep(Duration::from_millis(rng.random_range(10..40))).await;
        }
    }

    /// Sends one sale until it is answered; `None` for an answer a till
    /// does not expect (recorded).
    async fn ring(
        &self,
        http: &reqwest::Client,
        style: Style,
        body: &Value,
        id: &str,
        key: &str,
        refusal: Option<&'static str>,
    ) -> Option<Acked> {
        let began = std::time::Instant::now();
        loop {
            // A sale still not taken after three minutes of retries is a
            // hung lane: recorded, so that the run fails instead of hanging.
            if began.elapsed() > Duration::from_secs(180) {
                self.ledger.lock().unexpected.push(format!(
                    "{style:?}: no answer but retries for three minutes"
                ));
                return None;
            }
            let rb = match style {
                Style::Put => http.put(format!("{}/v1/sales/{id}", self.base)),
                Style::PostWithKey => http
                    .post(format!("{}/v1/sales", self.base))
                    .header("Idempotency-Key", key),
                Style::PostLegacy => http.post(format!("{}/v1/sales", self.base)),
            };
            let answer = match rb.json(body).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.json::<Value>().await.map(|v| (status, v))
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok((status @ (200 | 201), v)) => {
                    self.ledger.answer(status.to_string());
                    return Some(Acked {
                        transaction_id: v["transaction_id"].as_str()?.to_owned(),
                        receipt_no: v["receipt_no"].as_i64()?,
                        series: v["series"].as_str()?.to_owned(),
                        style,
                        at: std::time::Instant::now(),
                    });
                }
                // A refusal the attack expects: the sale is not recorded;
                // the till tells the cashier and goes on.
                Ok((_, v))
                    if v["code"]
                        .as_str()
                        .is_some_and(|c| self.tolerate.contains(&c) || refusal == Some(c)) =>
                {
                    let code = v["code"].as_str().unwrap_or("").to_owned();
                    *self.ledger.lock().refused.entry(code).or_default() += 1;
                    return None;
                }
                // Busy, shutting down, or the disk is full: the same
                // request again, a little later.
                Ok((status @ (500..=599), v)) => {
                    self.ledger
                        .answer(format!("{status} {}", v["code"].as_str().unwrap_or("")));
                }
                Ok((status, v)) => {
                    let what = format!("{style:?}: {status} {v}");
                    self.ledger
                        .answer(format!("{status} {}", v["code"].as_str().unwrap_or("")));
                    self.ledger.lock().unexpected.push(what);
                    return None;
                }
                Err(e) => {
                    let what = if e.is_timeout() {
                        "timeout"
                    } else if e.is_connect() {
                        "connection refused"
                    } else {
                        "connection error"
                    };
                    self.ledger.answer(what.into());
                }
            }
            // A till's own pause before it tries again.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
