//! Admin API: operator actions, authorised by the admin token (the file
//! `admin-token` in the data directory, created at first start, 0600).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::lane::store::closing::{CloseOutcome, CloseRequest};
use crate::lane::store::{Operator, RetryTarget, SettleOutcome, valid_doc_no, valid_reason};

use super::{AppState, bearer, bearer_matches, error};
use crate::common::http::HttpError;

/// Who an admin action is recorded as, unless the caller names itself.
const DEFAULT_ACTOR: &str = "admin-api";

fn authorise(s: &AppState, headers: &HeaderMap) -> Result<String, HttpError> {
    if !bearer_matches(bearer(headers), &s.inner.access.admin_token) {
        return Err(error::admin_unauthorized());
    }
    // Operators may say who they are; it goes into the audit log, so a
    // name that cannot be recorded as given is refused, never replaced.
    match headers.get("x-laned-actor") {
        None => Ok(DEFAULT_ACTOR.to_owned()),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|a| {
                (1..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .map(str::to_owned)
            .ok_or_else(error::invalid_actor),
    }
}

/// `POST /v1/admin/sync`: try the back-end now, re-check stuck sales now,
/// and lift a lane-level pause to find out whether it is fixed.
pub(super) async fn sync(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let actor = authorise(&s, &headers)?;
    let Some(drain) = &s.inner.drain else {
        return Err(error::no_backend());
    };
    s.store()
        .sync_now(s.inner.clock.wall(), actor.clone(), "sync requested".into())
        .await?;
    drain.sync();
    tracing::info!(actor = %actor, "sync requested by an operator");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "sync requested"})),
    )
        .into_response())
}

/// `POST /v1/admin/acknowledge-restore` with `{"reason": "..."}`: the lane
/// was restored from an old copy and support has looked into it. Numbering
/// continues above the back-end's numbers; audit-logged with the reason.
pub(super) async fn acknowledge_restore(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let actor = authorise(&s, &headers)?;
    super::require_json(&headers)?;
    let doc = json_body(body)?;
    let reason = reason(&doc)?;
    let Some(g) = s
        .store()
        .acknowledge_restore(s.inner.clock.wall(), actor.clone(), reason)
        .await?
    else {
        return Err(error::nothing_to_acknowledge());
    };
    s.inner.numbers.set_guard(None);
    let continues_after: std::collections::BTreeMap<&String, i64> =
        g.series.iter().map(|(k, b)| (k, b.backend)).collect();
    tracing::warn!(actor = %actor, series = ?continues_after, "restored lane acknowledged; numbering continues above the back-end's numbers");
    Ok((
        StatusCode::OK,
        Json(json!({"status": "acknowledged", "continues_after": continues_after})),
    )
        .into_response())
}

/// `POST /v1/admin/close-day` with `{"business_date": "2026-11-22"}` and,
/// when the drawer was counted, `"counted": {"KES": 1250000}` (minor
/// units): records the day's closing in the fiscal journal
/// (docs/journal.md); audit-logged. Closings are final.
pub(super) async fn close_day(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let actor = authorise(&s, &headers)?;
    super::require_json(&headers)?;
    let doc = json_body(body)?;
    let business_date = doc
        .get("business_date")
        .and_then(Value::as_str)
        .filter(|d| d.len() == 10 && d.parse::<jiff::civil::Date>().is_ok())
        .map(str::to_owned)
        .ok_or_else(|| field_error("business_date", "must be a date like 2026-11-22"))?;
    let counted = counted(doc.get("counted"))?;
    let zone = jiff::tz::TimeZone::get(&s.ceiling().snapshot().time_zone)
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let today = s.inner.clock.wall().to_zoned(zone).date().to_string();
    let outcome = s
        .store()
        .close_day(CloseRequest {
            business_date,
            today,
            counted,
            actor: actor.clone(),
        })
        .await?;
    if let Some((code, message)) = outcome.refusal() {
        return Err(error::close_refused(code, message));
    }
    if let CloseOutcome::Closed { closing } = &outcome {
        tracing::info!(actor = %actor, series = %closing.series, closing_no = closing.closing_no,
            business_date = %closing.business_date, "business day closed");
    }
    if let Some(d) = &s.inner.drain {
        d.wake();
    }
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// The optional `counted` object: currency → minor units.
fn counted(v: Option<&Value>) -> Result<std::collections::BTreeMap<String, i64>, HttpError> {
    let bad = || {
        field_error(
            "counted",
            "must be an object of currency codes and whole minor units, like {\"KES\": 1250000}",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(Default::default()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(c, n)| {
                let ok = c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
                match n.as_i64() {
                    Some(n) if ok && n.abs() <= crate::contract::money::MAX_AMOUNT => {
                        Ok((c.clone(), n))
                    }
                    _ => Err(bad()),
                }
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, HttpError> {
    let body = body.map_err(|r| error::unreadable_body(&r, super::MAX_BODY_BYTES))?;
    serde_json::from_slice(&body).map_err(|e| error::invalid_json(&e))
}

fn field_error(field: &str, message: &str) -> HttpError {
    error::request_invalid(vec![crate::contract::sale::FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

/// The required `reason`: 1 to 500 characters.
fn reason(doc: &Value) -> Result<String, HttpError> {
    doc.get("reason")
        .and_then(Value::as_str)
        .and_then(valid_reason)
        .map(str::to_owned)
        .ok_or_else(|| field_error("reason", "must say why, in 1 to 500 characters"))
}

fn settled(outcome: SettleOutcome, what: &str, actor: &str) -> Result<Response, HttpError> {
    match outcome {
        SettleOutcome::NotFound(id) => Err(error::sale_not_found(&id)),
        SettleOutcome::NotStuck {
            transaction_id,
            state,
        } => Err(error::not_stuck(&transaction_id, &state)),
        SettleOutcome::Done(sales) => {
            for sale in &sales {
                tracing::info!(actor = %actor, transaction_id = %sale.transaction_id,
                    receipt = %sale.receipt, state = sale.state, "{what} by an operator");
            }
            Ok((StatusCode::OK, Json(json!({"sales": sales}))).into_response())
        }
    }
}

fn transaction_id(id: &str) -> Result<String, HttpError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| error::invalid_transaction_id(id))
}

/// `POST /v1/admin/sales/{id}/retry` with `{"reason": "..."}`: a stuck sale
/// goes back to the drain at once; audit-logged.
pub(super) async fn retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    send_back(s, &headers, body, Some(&id)).await
}

/// `POST /v1/admin/retry-stuck` with `{"reason": "..."}`: every stuck sale
/// goes back to the drain; audit-logged one by one.
pub(super) async fn retry_all_stuck(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    send_back(s, &headers, body, None).await
}

/// Sends the stuck sale `id` (every stuck sale if `None`) back to the
/// drain for the authorised operator, with the reason the body gives, and
/// wakes the drain.
async fn send_back(
    s: AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    id: Option<&str>,
) -> Result<Response, HttpError> {
    let actor = authorise(&s, headers)?;
    super::require_json(headers)?;
    let target = match id {
        Some(id) => RetryTarget::One(transaction_id(id)?),
        None => RetryTarget::AllStuck,
    };
    let reason = reason(&json_body(body)?)?;
    let who = Operator {
        actor: actor.clone(),
        reason,
    };
    let outcome = s.store().retry(s.inner.clock.wall(), who, target).await?;
    if let Some(drain) = &s.inner.drain {
        drain.probe();
    }
    settled(outcome, "sent back to the drain", &actor)
}

/// `POST /v1/admin/sales/{id}/resolve` with `{"doc_no": "...", "reason":
/// "..."}`: a stuck sale was settled by hand; the back-end's document number
/// is recorded and the sale leaves the backlog; audit-logged.
pub(super) async fn resolve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    let actor = authorise(&s, &headers)?;
    super::require_json(&headers)?;
    let id = transaction_id(&id)?;
    let doc = json_body(body)?;
    let doc_no = doc
        .get("doc_no")
        .and_then(Value::as_str)
        .and_then(valid_doc_no)
        .map(str::to_owned)
        .ok_or_else(|| {
            field_error(
                "doc_no",
                "must be the back-end's document number, 1 to 64 printable characters",
            )
        })?;
    let reason = reason(&doc)?;
    let who = Operator {
        actor: actor.clone(),
        reason,
    };
    let outcome = s
        .store()
        .resolve(s.inner.clock.wall(), who, id, doc_no)
        .await?;
    settled(outcome, "resolved", &actor)
}
