//! salemap's HTTP surface: the server side of the back-end contract
//! (docs/backend-contract.md), and the one place where its errors become answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::store::chain::ConflictReason;
use super::store::{Item, Outcome, Store, StoreError};
use super::tokens::{Caller, Lanes};
use crate::common::clock::Clock;
use crate::common::http::HttpError;
use crate::contract::Posted;
use crate::contract::ack::{Binding, DayBinding, DayCertificate, Number, Signing};
use crate::contract::sale;
use crate::contract::{
    BatchResponse, Envelope, Heartbeat, IDEMPOTENCY_KEY, IDEMPOTENCY_REPLAYED, ItemResult, Keys,
    codes,
};

/// What an acknowledgement binds of a document, besides the back-end's
/// tenant, number and time.
struct Signable {
    lane_id: String,
    series: String,
    number: Number,
    hash: String,
}

impl Signable {
    fn of(it: &Item) -> Signable {
        Signable {
            lane_id: it.lane_id.clone(),
            series: it.series.clone(),
            number: Number::Receipt(it.receipt_no),
            hash: it.fingerprint.clone(),
        }
    }
}
use uuid::Uuid;

/// Largest single sale envelope: the contract's.
pub const MAX_SALE_BYTES: usize = crate::contract::MAX_ENVELOPE_BYTES;
/// Most sales in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Largest batch body: the contract's.
pub const MAX_BATCH_BYTES: usize = crate::contract::MAX_BATCH_BYTES;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    lanes: Lanes,
    tenant: String,
    clock: Arc<dyn Clock>,
    refused_skus: Vec<String>,
    signing: Signing,
    lane_ceiling: std::time::Duration,
    unsigned: bool,
    /// The gate of the posting routes (back-pressure).
    admission: Arc<super::admission::Admission>,
}

impl AppState {
    /// Builds the state of a salemap configured as `config` (who may post
    /// for which lane, its tenant, the SKUs it refuses with `422
    /// unknown_sku`, the lanes' ceiling, its admission limits), posting
    /// into `store` and signing with `signing`.
    pub fn new(
        store: Store,
        config: &super::Config,
        clock: Arc<dyn Clock>,
        signing: Signing,
    ) -> Self {
        AppState {
            inner: Arc::new(Shared {
                store,
                lanes: config.lanes.clone(),
                tenant: config.tenant.clone(),
                admission: Arc::new(super::admission::Admission::new(
                    config.admission,
                    clock.clone(),
                )),
                clock,
                refused_skus: config.refused_skus.clone(),
                signing,
                lane_ceiling: config.lane_ceiling,
                unsigned: config.unsigned,
            }),
        }
    }

    /// Who signs, for `GET /v1/keys` and the heartbeat.
    fn keys(&self) -> Keys {
        Keys {
            tenant: self.inner.tenant.clone(),
            signing_key: self.inner.signing.public().clone(),
        }
    }

    /// The signed day certificate of a lane's closing.
    fn certify(
        &self,
        lane_id: &str,
        series: &str,
        closing_no: i64,
        c: &super::store::Certified,
    ) -> Option<DayCertificate> {
        if self.inner.unsigned {
            return None;
        }
        let day = DayBinding {
            tenant: &self.inner.tenant,
            lane_id,
            series,
            closing_no,
            business_date: &c.business_date,
            closing_hash: &c.closing_hash,
            certified_at: &c.certified_at,
        };
        self.inner
            .signing
            .certify(&day)
            .inspect_err(|e| tracing::error!(error = %e, "cannot sign a day certificate"))
            .ok()
    }

    /// `doc` with its acknowledgement: the signature over what it binds
    /// (docs/backend-contract.md). A value that cannot be signed (a line
    /// break, which no checked input holds) leaves the answer unsigned,
    /// which the lane refuses as a bad acknowledgement.
    fn signed(&self, mut doc: Posted, what: &Signable) -> Posted {
        doc.ack = self.ack(&doc, what);
        doc
    }

    /// The acknowledgement of `doc` (none from an unsigned back-end, the
    /// benchmark seam).
    fn ack(&self, doc: &Posted, what: &Signable) -> Option<crate::contract::ack::Ack> {
        if self.inner.unsigned {
            return None;
        }
        let binding = Binding {
            tenant: &self.inner.tenant,
            lane_id: &what.lane_id,
            series: &what.series,
            number: what.number,
            hash: &what.hash,
            doc_no: &doc.doc_no,
            posted_at: &doc.posted_at,
        };
        self.inner
            .signing
            .sign(&binding)
            .inspect_err(|e| {
                tracing::error!(error = %e, transaction_id = %doc.transaction_id, "cannot sign an acknowledgement");
            })
            .ok()
    }

    fn now(&self) -> String {
        crate::common::time::fmt_ts(self.inner.clock.wall())
    }

    /// The lane the request's token belongs to (`None`: any lane, demo).
    /// A head office reader's token posts for no lane.
    fn lane(&self, headers: &HeaderMap) -> Result<Option<String>, HttpError> {
        match self.inner.lanes.caller(token(headers).as_deref()) {
            Some(Caller::Lane(l)) => Ok(Some(l.to_owned())),
            Some(Caller::Anyone) => Ok(None),
            Some(Caller::Office(_)) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "office_token",
                "A head office reader's token reads; it does not post or beat for a lane. \
                 Use the lane's own token.",
            )),
            None => Err(unauthorized()),
        }
    }

    /// Which lanes the request may read: `None` every lane (a head office
    /// reader, or demo mode), or the lane of a lane's token.
    pub(super) fn reader(&self, headers: &HeaderMap) -> Result<Option<String>, HttpError> {
        match self.inner.lanes.caller(token(headers).as_deref()) {
            Some(Caller::Lane(l)) => Ok(Some(l.to_owned())),
            Some(Caller::Anyone | Caller::Office(_)) => Ok(None),
            None => Err(unauthorized()),
        }
    }

    /// A request that must read every lane (the head-office page, the list
    /// of lanes, `/metrics`): a head office reader, or demo mode.
    pub(super) fn office(&self, headers: &HeaderMap) -> Result<(), HttpError> {
        match self.reader(headers)? {
            None => Ok(()),
            Some(l) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "office_only",
                format!(
                    "Lane {l}'s token reads only lane {l} (GET /v1/lanes/{l}); every lane needs \
                     a head office reader's token."
                ),
            )),
        }
    }

    /// How head office judges lanes now.
    pub(super) fn judge(&self) -> super::office::Judge {
        super::office::Judge {
            now: self.inner.clock.wall(),
            old_after: super::office::OLD_AFTER,
            ceiling: self.inner.lane_ceiling,
        }
    }

    /// The store, for the page.
    pub(super) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The tenant.
    pub(super) fn tenant(&self) -> String {
        self.inner.tenant.clone()
    }
}

/// The token of a request: `Authorization: Bearer TOKEN`, or, for a
/// browser, HTTP Basic with the token as the password (any user name).
fn token(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = v.strip_prefix("Bearer ") {
        return Some(t.trim().to_owned());
    }
    let basic = v.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
}

/// The router. The routes that post or beat pass the admission gate
/// first (back-pressure: `429 busy` beyond its limits), before their body
/// is read.
pub fn router(state: AppState) -> Router {
    let gate =
        axum::middleware::from_fn_with_state(state.inner.admission.clone(), super::admission::gate);
    Router::new()
        .route(
            "/v1/sales/{id}",
            put(put_sale)
                .layer::<_, std::convert::Infallible>(gate.clone())
                .get(get_sale)
                .layer(DefaultBodyLimit::max(MAX_SALE_BYTES)),
        )
        .route(
            "/v1/sales:batch",
            post(batch)
                .layer::<_, std::convert::Infallible>(gate.clone())
                .layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route(
            "/v1/closings/{id}",
            put(put_closing)
                .layer::<_, std::convert::Infallible>(gate.clone())
                .layer(DefaultBodyLimit::max(MAX_SALE_BYTES)),
        )
        .route(
            "/v1/heartbeat",
            get(heartbeat).layer::<_, std::convert::Infallible>(gate),
        )
        .route("/v1/keys", get(keys))
        .route("/v1/lanes", get(lanes))
        .route("/v1/lanes/{lane}", get(lane_detail))
        .route("/v1/lanes/{lane}/days/{date}", get(day))
        .route("/v1/lanes/{lane}/days/{date}/documents", get(day_documents))
        .route("/", get(super::page::overview))
        .route("/lanes/{lane}", get(super::page::lane))
        .route("/metrics", get(metrics))
        .fallback(|req: Request| async move {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("There is nothing at {}.", req.uri().path()),
            )
        })
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This path does not accept that method.",
            )
        })
        .with_state(state)
}

/// `Retry-After` of a `409 in_flight`: the request holding the id should
/// be done by then.
const IN_FLIGHT_RETRY_AFTER: u32 = 2;

/// `Retry-After` of a `429 busy` when no database connection came free:
/// the admission gate keeps this rare (reads share the pool).
const BUSY_POOL_RETRY_AFTER: u32 = 2;

/// A head-office page that cannot be drawn.
pub(super) fn page_error() -> HttpError {
    HttpError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "page_error",
        "The page cannot be drawn right now; GET /v1/lanes has the same figures.",
    )
}

fn unauthorized() -> HttpError {
    HttpError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Send this lane's token as Authorization: Bearer <token>.",
    )
}

fn wrong_lane(token_lane: &str, sent: &str) -> HttpError {
    HttpError::new(
        StatusCode::FORBIDDEN,
        "wrong_lane",
        format!("This token belongs to lane {token_lane}; it cannot post for lane {sent}."),
    )
}

fn too_large(limit: usize) -> HttpError {
    HttpError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("The body is larger than {limit} bytes."),
    )
    .with_details(json!({"limit_bytes": limit}))
}

fn bad_body(what: impl std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        format!("The body is not a sale envelope: {what}."),
    )
}

fn from_outcome(o: &Outcome) -> Option<HttpError> {
    match o {
        Outcome::Mismatch => Some(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            codes::PAYLOAD_MISMATCH,
            "This transaction id was posted before with a different document; nothing \
             was changed.",
        )),
        Outcome::ReceiptConflict { holder } => Some(
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::RECEIPT_NO_CONFLICT,
                format!(
                    "This lane, series and receipt number are already posted under \
                     transaction {holder}: the lane's data was probably restored from an \
                     old copy. Nothing was changed."
                ),
            )
            .with_details(json!({"holder": holder})),
        ),
        Outcome::ChainConflict { holder, reason } => {
            let (why, reason) = match reason {
                ConflictReason::Forked => (
                    "another document this back-end holds already follows the same previous \
                     document: the lane's journal forked (its data was restored or cloned \
                     from a copy)",
                    "forked",
                ),
                ConflictReason::OutOfLaneOrder => (
                    "the previous document it names comes at or after it in the lane's order",
                    "out_of_lane_order",
                ),
            };
            Some(
                HttpError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    codes::CHAIN_CONFLICT,
                    format!(
                        "This document contradicts document {holder} of the lane's journal: \
                         {why}. Nothing was changed; head office sees the conflict."
                    ),
                )
                .with_details(json!({"holder": holder, "reason": reason})),
            )
        }
        Outcome::GrandTotalMismatch { expected, found } => Some(
            HttpError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                codes::GRAND_TOTAL_MISMATCH,
                "This document's grand_total is not its previous document's plus its own \
                 amount. Nothing was changed.",
            )
            .with_details(json!({"expected": expected, "found": found})),
        ),
        Outcome::Posted(_) | Outcome::Replayed(_) => None,
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InFlight => {
                return HttpError::new(
                    StatusCode::CONFLICT,
                    codes::IN_FLIGHT,
                    "A sale of this request is being posted by another request right now; \
                     nothing was posted. Try again shortly.",
                )
                .with_retry_after(IN_FLIGHT_RETRY_AFTER);
            }
            StoreError::SeriesOfAnotherLane {
                series,
                owner,
                lane,
            } => {
                return HttpError::new(
                    StatusCode::FORBIDDEN,
                    codes::SERIES_OF_ANOTHER_LANE,
                    format!(
                        "Receipt series {series} belongs to lane {owner}; lane {lane} cannot \
                         post in it. Check the lane's series setting. Nothing was posted."
                    ),
                )
                .with_details(json!({"series": series, "owner": owner}));
            }
            // Every connection is taken: the database is up but busy, so
            // this is back-pressure, never an outage.
            StoreError::Pool(deadpool_postgres::PoolError::Timeout(
                deadpool_postgres::TimeoutType::Wait,
            )) => {
                tracing::warn!("no database connection came free in time; answered 429 busy");
                return HttpError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::BUSY,
                    "salemap is busy with other lanes' requests right now; nothing of this \
                     request was posted. Send it again after Retry-After seconds.",
                )
                .with_retry_after(BUSY_POOL_RETRY_AFTER);
            }
            _ => {}
        }
        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "database error");
        HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The database is not available right now; nothing was posted. Try again.",
        )
    }
}

/// The transaction id of a path, lower case; `400 invalid_transaction_id`
/// if it is not a version 4 UUID.
fn path_id(id: &str) -> Result<String, HttpError> {
    sale::parse_v4(id).map(|u| u.to_string()).ok_or_else(|| {
        let shown: String = id.chars().take(64).collect();
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_transaction_id",
            "A transaction id is a version 4 UUID such as \
             0b6f3c1e-8d4a-4c1b-9a57-2f0e6d9b1c3a.",
        )
        .with_details(json!({"transaction_id": shown}))
    })
}

/// A lane id, series or tenant: 1 to 32 letters, digits, '-' or '_'.
pub fn plain_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses and checks one envelope; `lane` is the token's lane (None: any).
/// What is wrong with a document's identity and place on its lane, the
/// same for a sale and a closing.
fn placement_problems(
    id: &str,
    recorded_at: &str,
    lane_id: &str,
    series: &str,
    lane_seq: i64,
) -> Vec<(&'static str, &'static str)> {
    let mut problems = vec![];
    if sale::parse_v4(id).is_none() {
        problems.push(("transaction_id", "must be a version 4 UUID"));
    }
    if recorded_at.parse::<jiff::Timestamp>().is_err() {
        problems.push((
            "recorded_at",
            "must be an RFC 3339 timestamp such as 2026-11-22T11:03:11.482Z",
        ));
    }
    if !plain_id(lane_id) {
        problems.push(("lane_id", "must be 1 to 32 letters, digits, '-' or '_'"));
    }
    if !plain_id(series) {
        problems.push(("series", "must be 1 to 32 letters, digits, '-' or '_'"));
    }
    if lane_seq < 1 {
        problems.push(("lane_seq", "must be 1 or more"));
    }
    problems
}

/// 422 `validation_failed`: the `what` (sale or closing) `id` and each of
/// its problems, in details.
fn invalid(what: &str, id: &str, fields: Vec<Value>) -> HttpError {
    HttpError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        format!(
            "The {what} {id} is not valid: {} problem(s), listed in details.",
            fields.len()
        ),
    )
    .with_details(json!({"fields": fields}))
}

fn item(bytes: &str, lane: Option<&str>, refused: &[String]) -> Result<Item, HttpError> {
    let env: Envelope = serde_json::from_str(bytes).map_err(bad_body)?;
    let id = env.transaction_id.to_string();
    let transaction_id = env.transaction_id;
    if let Some(l) = lane
        && env.lane_id != l
    {
        return Err(wrong_lane(l, &env.lane_id));
    }
    // Every field the contract defines is checked; fields it does not
    // define are accepted (a newer lane may send more) and kept in the
    // stored envelope.
    let mut problems = placement_problems(
        &id,
        &env.recorded_at,
        &env.lane_id,
        &env.series,
        env.lane_seq,
    );
    if env.receipt_no < 1 {
        problems.push(("receipt_no", "must be 1 or more"));
    }
    problems.extend(journal_problems(
        env.prev_hash.as_deref(),
        env.grand_total.is_some(),
    ));
    let doc: Value = serde_json::from_str(env.sale.get()).map_err(bad_body)?;
    let checked = sale::validate(&doc, Some(env.transaction_id));
    let mut fields: Vec<Value> = problems
        .iter()
        .map(|(f, m)| json!({"field": f, "message": m}))
        .collect();
    if let Err(errs) = &checked {
        fields.extend(errs.iter().map(|e| {
            json!({"field": format!("sale.{}", e.field).trim_end_matches('.'), "message": e.message})
        }));
    }
    let s = match checked {
        Ok(s) if fields.is_empty() => s,
        _ => return Err(invalid("sale", &id, fields)),
    };
    if let Some(sku) = s.skus().find(|sku| refused.iter().any(|r| r == sku)) {
        return Err(HttpError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sku",
            format!(
                "Head office does not sell SKU {sku}, so it cannot take sale {id}; \
                 fix the catalogue, then retry the sale."
            ),
        )
        .with_details(json!({"sku": sku})));
    }
    Ok(Item {
        transaction_id,
        lane_id: env.lane_id,
        series: env.series,
        receipt_no: env.receipt_no,
        lane_seq: env.lane_seq,
        kind: s.kind,
        references: s.references.map(|u| u.to_string()),
        business_date: s.business_date.clone(),
        currency: s.currency.clone(),
        total: s.total,
        fingerprint: crate::common::hash::sha256_hex(bytes.as_bytes()),
        envelope: bytes.to_owned(),
        prev_hash: env.prev_hash,
        grand_total: env.grand_total,
    })
}

/// What is wrong with a document's journal fields (docs/journal.md):
/// `prev_hash` is 64 lowercase hexadecimal digits, and comes with
/// `grand_total`.
fn journal_problems(
    prev_hash: Option<&str>,
    grand_total: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut problems = vec![];
    if let Some(p) = prev_hash
        && !(p.len() == 64 && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        problems.push(("prev_hash", "must be 64 lowercase hexadecimal digits"));
    }
    if prev_hash.is_some() != grand_total {
        problems.push((
            "grand_total",
            "must be present exactly when prev_hash is (docs/journal.md)",
        ));
    }
    problems
}

fn body_text(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<String, HttpError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else if crate::common::serve::BodyTimeout::caused(&r) {
            HttpError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request body stopped arriving before it was complete; nothing was stored.",
            )
        } else {
            bad_body(r.body_text())
        }
    })?;
    String::from_utf8(body.to_vec()).map_err(|_| bad_body("it is not UTF-8"))
}

/// `PUT /v1/sales/{id}`.
async fn put_sale(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let lane = s.lane(&headers)?;
    let id = path_id(&id)?;
    let text = body_text(body, MAX_SALE_BYTES)?;
    let it = item(&text, lane.as_deref(), &s.inner.refused_skus)?;
    if it.transaction_id.to_string() != id {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "id_mismatch",
            "The transaction id in the path differs from the one in the envelope.",
        ));
    }
    if let Some(k) = headers.get(IDEMPOTENCY_KEY)
        && k.to_str().map(str::to_ascii_lowercase).ok().as_deref() != Some(id.as_str())
    {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "id_mismatch",
            "The Idempotency-Key differs from the transaction id.",
        ));
    }
    let what = Signable::of(&it);
    let out = s
        .inner
        .store
        .post(s.inner.tenant.clone(), vec![it], s.now())
        .await?;
    let Some(o) = out.into_iter().next() else {
        return Err(StoreError::Task.into());
    };
    answer(&s, o, &what)
}

/// A single post's answer: `201`, `200` replayed (both signed), or the
/// refusal.
fn answer(s: &AppState, o: Outcome, what: &Signable) -> Result<Response, HttpError> {
    match o {
        Outcome::Posted(doc) => {
            Ok((StatusCode::CREATED, axum::Json(s.signed(doc, what))).into_response())
        }
        Outcome::Replayed(doc) => {
            let mut r = (StatusCode::OK, axum::Json(s.signed(doc, what))).into_response();
            r.headers_mut()
                .insert(IDEMPOTENCY_REPLAYED, HeaderValue::from_static("true"));
            Ok(r)
        }
        other => Err(from_outcome(&other).unwrap_or_else(|| StoreError::Task.into())),
    }
}

/// `PUT /v1/closings/{id}`: a lane's day closing (docs/journal.md), stored
/// once per id with its exact bytes.
async fn put_closing(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let lane = s.lane(&headers)?;
    let id = path_id(&id)?;
    let text = body_text(body, MAX_SALE_BYTES)?;
    let env: crate::contract::closing::ClosingEnvelope =
        serde_json::from_str(&text).map_err(bad_body)?;
    if let Some(l) = &lane
        && env.lane_id != *l
    {
        return Err(wrong_lane(l, &env.lane_id));
    }
    let mut problems = placement_problems(
        &env.transaction_id.to_string(),
        &env.recorded_at,
        &env.lane_id,
        &env.series,
        env.lane_seq,
    );
    if env.transaction_id.to_string() != id {
        problems.push((
            "transaction_id",
            "must be the id in the path (and the Idempotency-Key)",
        ));
    }
    if env.closing_no < 1 {
        problems.push(("closing_no", "must be 1 or more"));
    }
    problems.extend(journal_problems(Some(&env.prev_hash), true));
    let d = &env.closing.business_date;
    if d.len() != 10 || d.parse::<jiff::civil::Date>().is_err() {
        problems.push(("closing.business_date", "must be a date like 2026-11-22"));
    }
    if !problems.is_empty() {
        let fields = problems
            .iter()
            .map(|(f, m)| json!({"field": f, "message": m}))
            .collect();
        return Err(invalid("closing", &id, fields));
    }
    if let Some(k) = headers.get(IDEMPOTENCY_KEY)
        && k.to_str().map(str::to_ascii_lowercase).ok().as_deref() != Some(id.as_str())
    {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "id_mismatch",
            "The Idempotency-Key differs from the closing's id.",
        ));
    }
    let item = crate::salemap::store::ClosingItem {
        transaction_id: env.transaction_id,
        lane_id: env.lane_id,
        series: env.series,
        closing_no: env.closing_no,
        lane_seq: env.lane_seq,
        business_date: env.closing.business_date,
        fingerprint: crate::common::hash::sha256_hex(text.as_bytes()),
        envelope: text,
        prev_hash: env.prev_hash,
        grand_total: env.grand_total,
    };
    let what = Signable {
        lane_id: item.lane_id.clone(),
        series: item.series.clone(),
        number: Number::Closing(item.closing_no),
        hash: item.fingerprint.clone(),
    };
    let (lane_id, series, closing_no) =
        (item.lane_id.clone(), item.series.clone(), item.closing_no);
    let mut o = s
        .inner
        .store
        .post_closing(s.inner.tenant.clone(), item, s.now())
        .await?;
    // A closing the proven chain has reached carries its day certificate.
    if let Outcome::Posted(doc) | Outcome::Replayed(doc) = &mut o
        && let Some(c) = s
            .inner
            .store
            .certificate(
                s.inner.tenant.clone(),
                lane_id.clone(),
                series.clone(),
                closing_no,
            )
            .await?
    {
        doc.certificate = s.certify(&lane_id, &series, closing_no, &c);
    }
    answer(&s, o, &what)
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    lane_id: String,
    #[serde(borrow)]
    sales: Vec<&'a RawValue>,
}

/// `POST /v1/sales:batch`: one transaction for the whole request.
async fn batch(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let lane = s.lane(&headers)?;
    let text = body_text(body, MAX_BATCH_BYTES)?;
    let b: BatchBody<'_> = serde_json::from_str(&text).map_err(bad_body)?;
    if let Some(l) = &lane
        && b.lane_id != *l
    {
        return Err(wrong_lane(l, &b.lane_id));
    }
    tracing::debug!(lane = %b.lane_id, sales = b.sales.len(), "batch received");
    if b.sales.len() > MAX_BATCH {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("A batch holds at most {MAX_BATCH} sales."),
        ));
    }
    // Parse every item first: an envelope that cannot be read fails the
    // request (the lane then sends its sales one by one); a sale that breaks
    // a rule is refused on its own.
    let mut slots: Vec<Result<Item, (Uuid, HttpError)>> = Vec::with_capacity(b.sales.len());
    for raw in &b.sales {
        let env: Envelope = serde_json::from_str(raw.get()).map_err(bad_body)?;
        if env.lane_id != b.lane_id {
            return Err(wrong_lane(&b.lane_id, &env.lane_id));
        }
        let id = env.transaction_id;
        // The same limit as a PUT of this envelope.
        if raw.get().len() > MAX_SALE_BYTES {
            slots.push(Err((id, too_large(MAX_SALE_BYTES))));
            continue;
        }
        slots.push(item(raw.get(), lane.as_deref(), &s.inner.refused_skus).map_err(|e| (id, e)));
    }
    let valid: Vec<Item> = slots
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    // The acknowledgements are signed while the commit is flushed, on
    // every core: they are most of a batch's CPU, and it would wait.
    let signables: Vec<Signable> = valid.iter().map(Signable::of).collect();
    let signer = s.clone();
    let (outcomes, acks) =
        s.inner
            .store
            .post_with(s.inner.tenant.clone(), valid, s.now(), move |outcomes| {
                crate::common::par::map(outcomes.iter().zip(signables).collect(), |(o, what)| {
                    match o {
                        Outcome::Posted(d) | Outcome::Replayed(d) => signer.ack(d, &what),
                        _ => None,
                    }
                })
            })
            .await?;
    let mut outcomes = outcomes.into_iter().zip(acks);
    let results = slots
        .into_iter()
        .map(|slot| match slot {
            Err((id, e)) => result(id, e.status().as_u16(), None, Some(e)),
            Ok(it) => match outcomes.next() {
                Some((Outcome::Posted(mut d), ack)) => {
                    d.ack = ack;
                    result(it.transaction_id, 201, Some(d), None)
                }
                Some((Outcome::Replayed(mut d), ack)) => {
                    d.ack = ack;
                    result(it.transaction_id, 200, Some(d), None)
                }
                Some((o, _)) => {
                    let e = from_outcome(&o);
                    let status = e.as_ref().map_or(422, |e| e.status().as_u16());
                    result(it.transaction_id, status, None, e)
                }
                None => result(it.transaction_id, 503, None, Some(StoreError::Task.into())),
            },
        })
        .collect();
    Ok(axum::Json(BatchResponse { results }).into_response())
}

fn result(id: Uuid, status: u16, doc: Option<Posted>, err: Option<HttpError>) -> ItemResult {
    ItemResult {
        transaction_id: id,
        status,
        doc_no: doc.as_ref().map(|d| d.doc_no.clone()),
        posted_at: doc.as_ref().map(|d| d.posted_at.clone()),
        ack: doc.and_then(|d| d.ack),
        code: err.as_ref().map(|e| e.code().to_owned()),
        message: err.map(|e| e.message().to_owned()),
    }
}

/// Query of `GET /v1/heartbeat`. Other parameters are ignored (a newer
/// lane may send more).
#[derive(Deserialize)]
struct HeartbeatQuery {
    lane_id: Option<String>,
}

/// `GET /v1/heartbeat?lane_id=L03`: the highest receipt numbers held for
/// the lane the heartbeat names (with a per-lane token, it must be the
/// token's lane; without `lane_id`, the token's lane).
async fn heartbeat(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HeartbeatQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let token_lane = s.lane(&headers)?;
    let Query(q) = query.map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "The query string cannot be read; the heartbeat takes lane_id=<lane>.",
        )
    })?;
    if let Some(l) = q.lane_id.as_deref().filter(|l| !plain_id(l)) {
        let shown: String = l.chars().take(40).collect();
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_lane_id",
            format!("{shown:?} is not a lane id: 1 to 32 letters, digits, '-' or '_'."),
        ));
    }
    let lane = match (token_lane, q.lane_id) {
        (Some(t), Some(q)) if t != q => return Err(wrong_lane(&t, &q)),
        (Some(t), _) => Some(t),
        (None, q) => q,
    };
    let last_receipt_no = match lane {
        Some(l) => {
            s.inner.store.heard(s.tenant(), l.clone(), s.now()).await?;
            s.inner
                .store
                .last_receipt_no(s.inner.tenant.clone(), l)
                .await?
        }
        // Any-lane mode, and a heartbeat that names no lane (a lane older
        // than the lane_id parameter): nothing to compare with.
        None => Default::default(),
    };
    Ok(axum::Json(Heartbeat {
        server_time: s.now(),
        last_receipt_no,
        keys: (!s.inner.unsigned).then(|| s.keys()),
    })
    .into_response())
}

/// `GET /v1/keys`: the tenant and the key acknowledgements are signed with
/// (any caller with a token; the key is public).
async fn keys(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    s.reader(&headers)?;
    Ok(axum::Json(s.keys()).into_response())
}

/// `GET /v1/lanes`: every lane's watermarks, holes, closings and refused
/// documents, worst first (a head office reader).
async fn lanes(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    s.office(&headers)?;
    let marks = s.inner.store.marks(s.tenant(), None).await?;
    Ok(axum::Json(s.judge().overview(&marks)).into_response())
}

/// `GET /v1/lanes/{lane}`: one lane in full (a head office reader, or the
/// lane's own token).
async fn lane_detail(
    State(s): State<AppState>,
    Path(lane_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let detail = lane_marks(&s, &headers, &lane_id).await?;
    Ok(axum::Json(s.judge().detail(&detail)).into_response())
}

/// One lane's detail for a reader allowed to see it; `404 unknown_lane`
/// if salemap has never heard of it.
pub(super) async fn lane_marks(
    s: &AppState,
    headers: &HeaderMap,
    lane_id: &str,
) -> Result<super::store::marks::LaneDetail, HttpError> {
    if let Some(l) = s.reader(headers)?
        && l != lane_id
    {
        return Err(wrong_lane(&l, lane_id));
    }
    if !plain_id(lane_id) {
        let shown: String = lane_id.chars().take(40).collect();
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_lane_id",
            format!("{shown:?} is not a lane id: 1 to 32 letters, digits, '-' or '_'."),
        ));
    }
    s.inner
        .store
        .detail(s.tenant(), lane_id.to_owned())
        .await?
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "unknown_lane",
                format!("Head office has never heard from lane {lane_id}."),
            )
        })
}

/// `GET /metrics`: the figures of `GET /v1/lanes` per lane and series, in
/// the OpenMetrics text format (a head office reader).
async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    s.office(&headers)?;
    let marks = s.inner.store.marks(s.tenant(), None).await?;
    let text = super::office::metrics(&s.judge().overview(&marks), &s.inner.admission.gauges());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// `GET /v1/lanes/{lane}/days/{date}`.
async fn day(
    State(s): State<AppState>,
    Path((lane_id, date)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if let Some(l) = s.reader(&headers)?
        && l != lane_id
    {
        return Err(wrong_lane(&l, &lane_id));
    }
    if jiff::civil::Date::strptime("%Y-%m-%d", &date).is_err() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_date",
            format!("{date:?} is not a date like 2026-11-22."),
        ));
    }
    let d = s
        .inner
        .store
        .day(s.inner.tenant.clone(), lane_id, date)
        .await?;
    Ok(axum::Json(d).into_response())
}

/// Query of `GET /v1/lanes/{lane}/days/{date}/documents`.
#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/lanes/{lane}/days/{date}/documents?after=ID&limit=N`: the
/// documents salemap holds for a lane's business day, a page at a time,
/// in order of series, receipt number and id, for `laned report` to name
/// what differs.
async fn day_documents(
    State(s): State<AppState>,
    Path((lane_id, date)): Path<(String, String)>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    if let Some(l) = s.reader(&headers)?
        && l != lane_id
    {
        return Err(wrong_lane(&l, &lane_id));
    }
    let Query(q) = query.map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "The query string cannot be read; this takes after=<transaction id> and limit=<1..1000>.",
        )
    })?;
    if jiff::civil::Date::strptime("%Y-%m-%d", &date).is_err() {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_date",
            format!("{date:?} is not a date like 2026-11-22."),
        ));
    }
    let limit = q.limit.unwrap_or(crate::contract::DAY_DOCUMENTS_PAGE);
    if !(1..=crate::contract::DAY_DOCUMENTS_MAX).contains(&limit) {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!(
                "limit must be 1 to {}, not {limit}.",
                crate::contract::DAY_DOCUMENTS_MAX
            ),
        ));
    }
    let after = q.after.as_deref().map(path_id).transpose()?;
    let page = s
        .inner
        .store
        .day_documents(
            s.tenant(),
            lane_id.clone(),
            date.clone(),
            after.clone(),
            limit,
        )
        .await?
        .ok_or_else(|| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                format!(
                    "after={} is not a document of lane {lane_id} on {date}; start without \
                     after and pass each page's next_after.",
                    after.as_deref().unwrap_or_default()
                ),
            )
        })?;
    let full = i64::try_from(page.len()).unwrap_or(i64::MAX) == limit;
    let next_after = page
        .last()
        .filter(|_| full)
        .map(|d| d.transaction_id.clone());
    Ok(axum::Json(crate::contract::DayDocuments {
        lane_id,
        business_date: date,
        documents: page,
        next_after,
    })
    .into_response())
}

/// `GET /v1/sales/{id}`: a posted document, for support.
async fn get_sale(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let lane = s.reader(&headers)?;
    let id = path_id(&id)?;
    let found = s
        .inner
        .store
        .get(s.inner.tenant.clone(), id.clone())
        .await?
        .filter(|d| lane.as_deref().is_none_or(|l| l == d.lane_id));
    match found {
        Some(d) => Ok(axum::Json(d).into_response()),
        None => Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No sale {id} is posted for this lane."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deadpool_postgres::{PoolError, TimeoutType};

    #[test]
    fn a_pool_with_every_connection_taken_is_busy_and_an_unreachable_database_unavailable() {
        let busy = HttpError::from(StoreError::Pool(PoolError::Timeout(TimeoutType::Wait)));
        assert_eq!(
            (busy.status(), busy.code()),
            (StatusCode::TOO_MANY_REQUESTS, super::super::admission::BUSY)
        );
        let answer = busy.into_response();
        assert_eq!(answer.headers()["retry-after"], "2");
        // Connecting (or checking a connection) too slowly is the database's
        // trouble, not load: an outage, retried as such.
        for t in [TimeoutType::Create, TimeoutType::Recycle] {
            let e = HttpError::from(StoreError::Pool(PoolError::Timeout(t)));
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }
}
