//! A scripted back-end: axum on port 0 that implements the back-end
//! contract (docs/backend-contract.md) with an in-memory posted-sale map, answers as a test scripts
//! it request by request, and keeps everything it received.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use laned::contract::ack::{Binding, Number, Signing};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

/// One request as the back-end saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The transaction ids in this request, in order (one for a PUT, many
    /// for a batch, none for a heartbeat).
    pub fn ids(&self) -> Vec<String> {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        match v.get("sales").and_then(Value::as_array) {
            Some(sales) => sales
                .iter()
                .filter_map(|s| s["transaction_id"].as_str().map(String::from))
                .collect(),
            None => v["transaction_id"]
                .as_str()
                .map(String::from)
                .into_iter()
                .collect(),
        }
    }
}

/// How to answer the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Behave as a correct back-end.
    Normal,
    /// Answer this status with this JSON body and headers, posting nothing.
    Status(u16, Value, Vec<(&'static str, String)>),
    /// Post normally, then drop the connection before the answer's body
    /// arrives (the lane sees a lost response).
    CommitThenDrop,
    /// Post normally, then never answer (the lane is killed meanwhile).
    CommitThenHang,
    /// In a batch: answer each item with this status and code instead of
    /// posting it, if its id is in the list.
    RefuseItems(Vec<(String, u16, &'static str)>),
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    /// id → (doc_no, body); never forgets.
    posted: HashMap<String, (String, Bytes)>,
    /// How many times each id was newly posted (must stay 1).
    post_counts: HashMap<String, u32>,
    order: Vec<String>,
    next_doc: u64,
    batch_supported: bool,
    token: Option<String>,
    /// Answer every request, heartbeats included, with 503.
    down: bool,
    /// The heartbeat's `last_receipt_no`.
    last_receipt_no: Value,
    /// Seeded random faults on the sale routes, when set.
    faults: Option<Faults>,
    /// The key acknowledgements are signed with (and the heartbeat names),
    /// when the back-end signs.
    signing: Option<Signing>,
    /// How acknowledgements are forged, when they are.
    forgery: Option<Forgery>,
    /// The first acknowledgement given (what a replay forgery sends).
    first_ack: Option<Value>,
}

/// A forged acknowledgement, to try the lane's checks.
#[derive(Clone)]
pub enum Forgery {
    /// Signed with this other key, under the signing key's id.
    OtherKey(Box<Signing>),
    /// One hexadecimal digit of the signature changed.
    ByteChanged,
    /// The acknowledgement of the first document, for every later one.
    Replayed,
    /// No acknowledgement at all.
    Missing,
}

/// Seeded random faults: each sale request (a `PUT` or a batch), when no
/// scripted reply is queued, fails with probability `rate`, in one of the
/// ways a lossy link or a busy back-end fails.
struct Faults {
    rng: rand::rngs::Xoshiro256PlusPlus,
    rate: f64,
    /// How many of each kind were injected.
    injected: std::collections::BTreeMap<&'static str, u32>,
}

impl Faults {
    fn next(&mut self) -> Reply {
        use rand::RngExt;
        if !self.rng.random_bool(self.rate) {
            return Reply::Normal;
        }
        let (kind, reply) = match self.rng.random_range(0..4) {
            0 => (
                "503 Retry-After: 1",
                Reply::Status(
                    503,
                    json!({"code": "busy", "message": "injected"}),
                    vec![("retry-after", "1".into())],
                ),
            ),
            1 => (
                "429 Retry-After: 1",
                Reply::Status(
                    429,
                    json!({"code": "slow_down", "message": "injected"}),
                    vec![("retry-after", "1".into())],
                ),
            ),
            2 => ("500", Reply::Status(500, json!({}), vec![])),
            _ => ("answer lost after commit", Reply::CommitThenDrop),
        };
        *self.injected.entry(kind).or_default() += 1;
        reply
    }
}

#[derive(Clone)]
pub struct Backend {
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
    pub url: String,
    pub addr: SocketAddr,
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    /// Heartbeats wait while this is true.
    held: Arc<tokio::sync::watch::Sender<bool>>,
    /// Sale requests wait (after being recorded, their reply chosen) while
    /// this is true.
    held_sales: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The lane sent no or the wrong token.
struct Unauthorized;

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "unauthorized", "message": "bad lane token"})),
        )
            .into_response()
    }
}

struct Dropped;

impl http_body::Body for Dropped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::other(
            "connection dropped by the test",
        ))))
    }
}

impl Backend {
    /// Starts on an ephemeral loopback port. `token` is the bearer token it
    /// demands (401 otherwise).
    pub async fn start(token: Option<&str>) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let b = Backend {
            inner: Arc::new(Mutex::new(Inner {
                batch_supported: true,
                token: token.map(String::from),
                ..Default::default()
            })),
            arrived: Arc::new(Notify::new()),
            url: format!("http://{addr}"),
            addr,
            stop: Arc::new(Mutex::new(None)),
            held: Arc::new(tokio::sync::watch::Sender::new(false)),
            held_sales: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let app = Router::new()
            .route("/v1/sales/{id}", put(put_sale))
            .route("/v1/sales:batch", post(batch))
            .route("/v1/heartbeat", get(heartbeat))
            .with_state(b.clone());
        let (tx, rx) = oneshot::channel::<()>();
        *b.stop.lock().unwrap() = Some(tx);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs acknowledgements with `key` (tenant `default`), and names it
    /// in the heartbeat; `None`: a back-end that does not sign.
    pub fn sign_with(&self, key: Option<Signing>) {
        self.lock().signing = key;
    }

    /// Forges the acknowledgements of documents posted from now on
    /// (`None`: honest again).
    pub fn forge(&self, f: Option<Forgery>) {
        self.lock().forgery = f;
    }

    /// Queues replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Forgets the replies not used yet.
    pub fn clear_script(&self) {
        self.lock().script.clear();
    }

    /// Answers 404 on the batch route from now on.
    pub fn without_batch(&self) {
        self.lock().batch_supported = false;
    }

    /// Changes the token the back-end accepts.
    pub fn set_token(&self, token: Option<&str>) {
        self.lock().token = token.map(String::from);
    }

    /// Heartbeats are kept waiting (after being recorded) until
    /// [`Backend::release_heartbeats`].
    pub fn hold_heartbeats(&self) {
        self.held.send_replace(true);
    }

    /// Answers the heartbeats held, and every one from now on.
    pub fn release_heartbeats(&self) {
        self.held.send_replace(false);
    }

    /// Sale requests are kept waiting, each after it is recorded and its
    /// reply chosen, until [`Backend::release_sales`]: an attempt stays on
    /// the wire while a test does something else.
    pub fn hold_sales(&self) {
        self.held_sales.send_replace(true);
    }

    /// Answers the sale requests held, and every one from now on.
    pub fn release_sales(&self) {
        self.held_sales.send_replace(false);
    }

    /// How many sale requests (single or batch) have arrived.
    pub fn sale_requests(&self) -> usize {
        self.lock()
            .received
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    }

    /// Waits until at least `n` sale requests have arrived.
    pub async fn wait_for_sale_requests(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.sale_requests() >= n {
                return;
            }
            notified.await;
        }
    }

    /// From now on, each sale request fails at random with probability
    /// `rate` (seeded): 503 or 429 with `Retry-After: 1`, 500, or the answer
    /// lost after the sales were posted.
    pub fn random_faults(&self, seed: u64, rate: f64) {
        use rand::SeedableRng;
        self.lock().faults = Some(Faults {
            rng: rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed),
            rate,
            injected: Default::default(),
        });
    }

    /// Faults injected so far, by kind.
    pub fn faults_injected(&self) -> std::collections::BTreeMap<&'static str, u32> {
        self.lock()
            .faults
            .as_ref()
            .map(|f| f.injected.clone())
            .unwrap_or_default()
    }

    /// What heartbeats answer as `last_receipt_no` (default `{}`).
    pub fn set_last_receipt_no(&self, v: Value) {
        self.lock().last_receipt_no = v;
    }

    /// Takes the back-end down (every request answered 503) or up again.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Ids in the order the back-end first posted them.
    pub fn posted_order(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    /// How many times each id was newly posted.
    pub fn post_counts(&self) -> HashMap<String, u32> {
        self.lock().post_counts.clone()
    }

    /// Waits until the back-end has received at least `n` requests.
    pub async fn wait_for_requests(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.lock().received.len() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Waits until at least `n` distinct sales are posted.
    pub async fn wait_for_posted(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.lock().posted.len() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Keeps the request; takes the next scripted reply when `consume`
    /// (sale routes only: heartbeats never eat a script entry).
    fn record(
        &self,
        method: &str,
        uri: (String, Option<&str>),
        headers: &HeaderMap,
        body: &Bytes,
        consume: bool,
    ) -> Result<Reply, Unauthorized> {
        let mut g = self.lock();
        g.received.push(Received {
            method: method.into(),
            path: uri.0,
            query: uri.1.map(String::from),
            headers: headers.clone(),
            body: body.clone(),
        });
        let want = g.token.clone();
        let reply = if g.down {
            Reply::Status(
                503,
                json!({"code": "down", "message": "the back-end is down for the test"}),
                vec![],
            )
        } else if consume {
            match g.script.pop_front() {
                Some(r) => r,
                None => g.faults.as_mut().map_or(Reply::Normal, Faults::next),
            }
        } else {
            Reply::Normal
        };
        drop(g);
        if let Some(t) = want {
            let sent = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if sent != Some(t.as_str()) {
                return Err(Unauthorized);
            }
        }
        Ok(reply)
    }

    /// Tells waiters a sale request arrived, then holds it while sale
    /// requests are held.
    async fn wait_released(&self) {
        self.arrived.notify_waiters();
        let _ = self.held_sales.subscribe().wait_for(|held| !*held).await;
    }

    /// Posts one envelope: (status, answer) as a correct back-end would.
    /// The fingerprint is the envelope's canonical JSON, so the same
    /// envelope compares equal whether it came alone or in a batch.
    fn post_one(&self, id: &str, body: Bytes) -> (u16, Value) {
        let (status, mut answer) = self.post_unsigned(id, body.clone());
        if (status == 200 || status == 201)
            && let Some(ack) = self.ack_for(&body, &answer)
        {
            answer["ack"] = ack;
        }
        (status, answer)
    }

    /// The acknowledgement of `answer` for the envelope `raw` (its exact
    /// bytes), honest or forged as told.
    fn ack_for(&self, raw: &[u8], answer: &Value) -> Option<Value> {
        let mut g = self.lock();
        let key = g.signing.clone()?;
        let env: Value = serde_json::from_slice(raw).ok()?;
        let hash = laned::contract::journal::hash(raw);
        let number = match env["closing_no"].as_i64() {
            Some(n) => Number::Closing(n),
            None => Number::Receipt(env["receipt_no"].as_i64()?),
        };
        let binding = Binding {
            tenant: "default",
            lane_id: env["lane_id"].as_str()?,
            series: env["series"].as_str()?,
            number,
            hash: &hash,
            doc_no: answer["doc_no"].as_str()?,
            posted_at: answer["posted_at"].as_str()?,
        };
        let honest = serde_json::to_value(key.sign(&binding).ok()?).ok()?;
        if g.first_ack.is_none() {
            g.first_ack = Some(honest.clone());
        }
        match g.forgery.clone() {
            None => Some(honest),
            Some(Forgery::Missing) => None,
            Some(Forgery::Replayed) => g.first_ack.clone(),
            Some(Forgery::ByteChanged) => {
                let mut a = honest;
                let sig = a["signature"].as_str()?.to_owned();
                let flipped = if sig.starts_with('0') { "1" } else { "0" };
                a["signature"] = Value::from(format!("{flipped}{}", &sig[1..]));
                Some(a)
            }
            Some(Forgery::OtherKey(other)) => {
                let mut a = serde_json::to_value(other.sign(&binding).ok()?).ok()?;
                a["key_id"] = honest["key_id"].clone();
                Some(a)
            }
        }
    }

    fn post_unsigned(&self, id: &str, body: Bytes) -> (u16, Value) {
        let body = Bytes::from(
            serde_json::from_slice::<Value>(&body)
                .map(|v| v.to_string().into_bytes())
                .unwrap_or_else(|_| body.to_vec()),
        );
        let mut g = self.lock();
        if let Some((doc, stored)) = g.posted.get(id) {
            if *stored == body {
                return (
                    200,
                    json!({"transaction_id": id, "doc_no": doc, "posted_at": "2026-11-22T12:00:00Z"}),
                );
            }
            return (
                422,
                json!({"code": "payload_mismatch", "message": "same id, different bytes"}),
            );
        }
        g.next_doc += 1;
        let doc = format!("D{:06}", g.next_doc);
        g.posted.insert(id.to_owned(), (doc.clone(), body));
        *g.post_counts.entry(id.to_owned()).or_default() += 1;
        g.order.push(id.to_owned());
        (
            201,
            json!({"transaction_id": id, "doc_no": doc, "posted_at": "2026-11-22T12:00:00Z"}),
        )
    }
}

fn status_reply(status: u16, body: Value, headers: Vec<(&'static str, String)>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    for (k, v) in headers {
        if let Ok(v) = v.parse() {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn dropped() -> Response {
    Response::builder()
        .status(201)
        .body(Body::new(Dropped))
        .unwrap_or_default()
}

async fn put_sale(
    State(b): State<Backend>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = match b.record(
        "PUT",
        (format!("/v1/sales/{id}"), None),
        &headers,
        &body,
        true,
    ) {
        Ok(r) => r,
        Err(unauthorized) => {
            b.arrived.notify_waiters();
            return unauthorized.into_response();
        }
    };
    b.wait_released().await;
    let resp = match reply {
        Reply::Status(s, v, h) => status_reply(s, v, h),
        Reply::CommitThenDrop => {
            b.post_one(&id, body);
            dropped()
        }
        Reply::CommitThenHang => {
            b.post_one(&id, body);
            b.arrived.notify_waiters();
            std::future::pending::<()>().await;
            dropped()
        }
        Reply::Normal | Reply::RefuseItems(_) => {
            let (s, v) = b.post_one(&id, body);
            let mut r = status_reply(s, v, vec![]);
            if s == 200 {
                r.headers_mut()
                    .insert("idempotency-replayed", "true".parse().unwrap());
            }
            r
        }
    };
    b.arrived.notify_waiters();
    resp
}

async fn batch(State(b): State<Backend>, headers: HeaderMap, body: Bytes) -> Response {
    let supported = b.lock().batch_supported;
    let reply = match b.record(
        "POST",
        ("/v1/sales:batch".into(), None),
        &headers,
        &body,
        supported,
    ) {
        Ok(r) => r,
        Err(unauthorized) => {
            b.arrived.notify_waiters();
            return unauthorized.into_response();
        }
    };
    b.wait_released().await;
    if !supported {
        b.arrived.notify_waiters();
        return status_reply(
            404,
            json!({"code": "not_found", "message": "no batch route"}),
            vec![],
        );
    }
    let resp = match reply {
        Reply::Status(s, v, h) => status_reply(s, v, h),
        other => {
            #[derive(serde::Deserialize)]
            struct Raw<'a> {
                #[serde(borrow)]
                sales: Vec<&'a serde_json::value::RawValue>,
            }
            let raw: Vec<String> = serde_json::from_slice::<Raw<'_>>(&body)
                .map(|r| r.sales.iter().map(|s| s.get().to_owned()).collect())
                .unwrap_or_default();
            let refuse = match &other {
                Reply::RefuseItems(r) => r.clone(),
                _ => vec![],
            };
            let mut results = vec![];
            for sale in raw {
                let id = serde_json::from_str::<Value>(&sale).unwrap_or_default()["transaction_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if let Some((_, s, code)) = refuse.iter().find(|(r, _, _)| *r == id) {
                    results.push(json!({"transaction_id": id, "status": s, "code": code, "message": "refused by the test"}));
                    continue;
                }
                // The stored bytes of each envelope, exactly as sent.
                let (s, ans) = b.post_one(&id, Bytes::from(sale.into_bytes()));
                let mut item = json!({"transaction_id": id, "status": s});
                for k in ["doc_no", "posted_at", "ack", "code", "message"] {
                    if !ans[k].is_null() {
                        item[k] = ans[k].clone();
                    }
                }
                results.push(item);
            }
            if matches!(other, Reply::CommitThenHang) {
                b.arrived.notify_waiters();
                std::future::pending::<()>().await;
            }
            if matches!(other, Reply::CommitThenDrop) {
                dropped()
            } else {
                status_reply(200, json!({"results": results}), vec![])
            }
        }
    };
    b.arrived.notify_waiters();
    resp
}

async fn heartbeat(State(b): State<Backend>, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let recorded = b.record(
        "GET",
        (uri.path().to_owned(), uri.query()),
        &headers,
        &Bytes::new(),
        false,
    );
    b.arrived.notify_waiters();
    let _ = b.held.subscribe().wait_for(|held| !*held).await;
    let resp = match recorded {
        Ok(Reply::Status(s, v, h)) => status_reply(s, v, h),
        Ok(_) => {
            let (last, key) = {
                let g = b.lock();
                (g.last_receipt_no.clone(), g.signing.clone())
            };
            let last = if last.is_null() { json!({}) } else { last };
            let mut answer =
                json!({"server_time": "2026-11-22T12:00:00Z", "last_receipt_no": last});
            if let Some(k) = key {
                answer["tenant"] = json!("default");
                answer["signing_key"] = json!(k.public());
            }
            status_reply(200, answer, vec![])
        }
        Err(unauthorized) => unauthorized.into_response(),
    };
    b.arrived.notify_waiters();
    resp
}
