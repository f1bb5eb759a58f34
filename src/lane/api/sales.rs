//! Till API handlers: minting ids, recording sales, reading them back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{AppState, MAX_BODY_BYTES, error};
use crate::common::http::HttpError;
use crate::contract::Envelope;
use crate::contract::sale::{self, FieldError, Sale};
use crate::lane::ceiling::LaneState;
use crate::lane::messages::Words;
use crate::lane::store::{
    ClientKey, InsertOutcome, ListFilter, NewSale, SaleRow, SaleState, SaleSummary, receipt_label,
};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Default and largest page of `GET /v1/sales`.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 1000;

/// `POST /v1/transactions`: a fresh v4 id for a cart. Nothing is stored.
pub(super) async fn new_transaction() -> Json<Value> {
    Json(serde_json::json!({"transaction_id": Uuid::new_v4()}))
}

/// `PUT /v1/sales/{id}`.
pub(super) async fn put_sale(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let started = s.inner.clock.monotonic();
    super::require_json(&headers)?;
    let id = sale::parse_v4(&id).ok_or_else(|| error::invalid_transaction_id(&id))?;
    let sale = parse_sale(body, Some(id))?;
    let words = s.words(&headers);
    record(&s, id, sale, None, started, words).await
}

/// `POST /v1/sales`: laned mints the id; `Idempotency-Key` or the legacy
/// duplicate rule make repeats harmless.
pub(super) async fn post_sale(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let started = s.inner.clock.monotonic();
    super::require_json(&headers)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(idempotency_key(v)?),
    };
    let sale = parse_sale(body, None)?;
    let client_key = key
        .map(ClientKey::Idempotency)
        .or_else(|| sale.legacy_fingerprint().map(ClientKey::Legacy));
    let words = s.words(&headers);
    record(&s, Uuid::new_v4(), sale, client_key, started, words).await
}

fn idempotency_key(v: &HeaderValue) -> Result<String, HttpError> {
    let ok = v
        .to_str()
        .ok()
        .filter(|k| (1..=MAX_IDEMPOTENCY_KEY).contains(&k.len()))
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()));
    ok.map(str::to_owned).ok_or_else(|| {
        error::request_invalid(vec![FieldError {
            field: "Idempotency-Key".into(),
            message: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        }])
    })
}

fn parse_sale(
    body: Result<Bytes, BytesRejection>,
    own_id: Option<Uuid>,
) -> Result<Sale, HttpError> {
    let body = body.map_err(|r| error::unreadable_body(&r, MAX_BODY_BYTES))?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| error::invalid_json(&e))?;
    sale::validate(&doc, own_id).map_err(error::validation_failed)
}

/// The answer to a recorded sale.
#[derive(Serialize)]
struct Recorded<'a> {
    transaction_id: &'a str,
    series: &'a str,
    receipt_no: i64,
    receipt: String,
    state: SaleState,
    lane_state: LaneState,
    /// Seconds before the nearest ceiling limit; null when none applies.
    ceiling_remaining_seconds: Option<u64>,
}

async fn record(
    s: &AppState,
    id: Uuid,
    sale: Sale,
    client_key: Option<ClientKey>,
    started: std::time::Duration,
    words: Words,
) -> Result<Response, HttpError> {
    let by_key = client_key.is_some();
    // Just after start, wait (briefly) for the lane's receipt numbers to be
    // compared with the back-end's: a lane restored from an old copy must
    // not hand out a number head office already holds.
    s.inner
        .numbers
        .first_check(
            s.inner.clock.as_ref(),
            s.inner.started + crate::lane::guard::NUMBER_CHECK_WAIT,
        )
        .await;
    // A suspended lane still answers a repeat of a sale it stored before.
    let ceiling = s.ceiling().snapshot();
    let guard = s.restore_guard();
    let suspended = ceiling.state == LaneState::Suspended;
    let sale_json = sale.canonical_json();
    let new = NewSale {
        sale_sha256: crate::common::hash::sha256_hex(sale_json.as_bytes()),
        transaction_id: id,
        kind: sale.kind,
        references: sale.references,
        client_key,
        sale_json,
        currency: sale.currency.clone(),
        total: sale.total,
        business_date: sale.business_date.clone(),
        replay_only: suspended || guard.is_some(),
    };
    let outcome = s.store().insert_sale(new).await.map_err(|e| {
        tracing::warn!(transaction_id = %id, error = %e, "sale not recorded");
        error::not_recorded(e, words)
    })?;
    let (status, row) = match outcome {
        InsertOutcome::Created(row) => {
            if let Some(d) = &s.inner.drain {
                d.wake();
            }
            if let Ok(at) = row.recorded_at.parse() {
                s.ceiling().sale_recorded(at);
            }
            let took = s.inner.clock.monotonic().saturating_sub(started);
            s.inner.metrics.sale_recorded(took.as_secs_f64());
            tracing::debug!(transaction_id = %row.transaction_id, receipt = %receipt_label(&row.series, row.receipt_no), seq = row.seq, "sale recorded");
            (StatusCode::CREATED, row)
        }
        InsertOutcome::Replayed(row) => {
            tracing::debug!(transaction_id = %row.transaction_id, "repeat of a recorded sale answered");
            (StatusCode::OK, row)
        }
        InsertOutcome::Conflict(row) => {
            tracing::warn!(transaction_id = %row.transaction_id, "transaction id reused for a different sale; refused");
            let shown = if by_key && row.transaction_id != id.to_string() {
                row.transaction_id.clone()
            } else {
                id.to_string()
            };
            return Err(error::transaction_id_reused(
                &shown,
                &receipt_label(&row.series, row.receipt_no),
                by_key,
            ));
        }
        InsertOutcome::Refused(r) => {
            tracing::info!(transaction_id = %id, refusal = ?r, "sale refused: its business day is closed");
            return Err(error::closed_day(&r, words));
        }
        InsertOutcome::NotStored => {
            if let Some(g) = &guard {
                tracing::info!(transaction_id = %id, "sale refused: the lane was restored from an old copy");
                return Err(error::restored_from_old_copy(g, words));
            }
            tracing::info!(transaction_id = %id, "sale refused: the lane is suspended");
            return Err(error::lane_suspended(&ceiling, words));
        }
    };
    let answer = Recorded {
        transaction_id: &row.transaction_id,
        series: &row.series,
        receipt_no: row.receipt_no,
        receipt: receipt_label(&row.series, row.receipt_no),
        state: row.state,
        lane_state: ceiling.state,
        ceiling_remaining_seconds: ceiling.nearest.map(|(_, left)| left.as_secs()),
    };
    let mut resp = (status, Json(answer)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/sales/{}", row.transaction_id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

/// `GET /v1/sales/{id}`: the sale as stored, with its delivery state.
pub(super) async fn get_sale(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let uuid = sale::parse_v4(&id).ok_or_else(|| error::invalid_transaction_id(&id))?;
    let row = s
        .store()
        .sale(uuid)
        .await?
        .ok_or_else(|| error::sale_not_found(&uuid.to_string()))?;
    #[derive(Serialize)]
    struct Full<'a> {
        #[serde(flatten)]
        summary: SaleSummary<'a>,
        /// A return or void held back until the sale it references is posted.
        waiting_for: Option<String>,
        sale: Box<RawValue>,
    }
    let waiting_for = s.store().waiting_for(row.transaction_id.clone()).await?;
    let envelope: Envelope = serde_json::from_slice(&row.body).map_err(|source| {
        HttpError::from(crate::lane::store::StoreError::Decode {
            what: format!("sale {uuid}"),
            source,
        })
    })?;
    Ok(Json(Full {
        summary: row.summary(),
        waiting_for,
        sale: envelope.sale,
    })
    .into_response())
}

/// `GET /v1/sales?state=&after=&limit=`: a page in lane order. Pass the
/// answer's `next_after` as `after` for the next page.
pub(super) async fn list_sales(
    State(s): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(pairs) = q.map_err(|_| error::unreadable_query())?;
    let bad = |field: &str, message: String| {
        error::invalid_query(FieldError {
            field: field.into(),
            message,
        })
    };
    let mut state = None;
    let mut after = 0;
    let mut limit = DEFAULT_PAGE;
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(bad(key, "is given more than once".into()));
        }
        match key.as_str() {
            "state" => {
                state = match value.as_str() {
                    "" | "all" => None,
                    st => Some(SaleState::parse(st).ok_or_else(|| {
                        bad(
                            "state",
                            format!("must be pending, posted, stuck, resolved or all, not {st:?}"),
                        )
                    })?),
                }
            }
            "after" => {
                after = value
                    .parse()
                    .ok()
                    .filter(|a: &i64| *a >= 0)
                    .ok_or_else(|| {
                        bad(
                        "after",
                        "must be a whole number, 0 or more (the next_after of the previous page)"
                            .into(),
                    )
                    })?
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l: &i64| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        bad(
                            "limit",
                            format!("must be a whole number between 1 and {MAX_PAGE}"),
                        )
                    })?
            }
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(bad(
                    &shown,
                    "is not a parameter of this list, which takes state, after and limit".into(),
                ));
            }
        }
    }
    let rows = s
        .store()
        .list(ListFilter {
            state,
            after,
            limit,
        })
        .await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let sales: Vec<SaleSummary<'_>> = rows.iter().map(SaleRow::summary).collect();
    Ok(Json(serde_json::json!({"sales": sales, "next_after": next_after})).into_response())
}
