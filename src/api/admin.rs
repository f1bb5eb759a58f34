//! Admin API: operator actions, authorised by the admin token (the file
//! `admin-token` in the data directory, created at first start, 0600).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, AppState, bearer, bearer_matches};

/// Who an admin action is recorded as, unless the caller names itself.
const DEFAULT_ACTOR: &str = "admin-api";

fn authorise(s: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if !bearer_matches(bearer(headers), &s.inner.admin_token) {
        return Err(ApiError::admin_unauthorized());
    }
    // Operators may say who they are; it goes into the audit log.
    Ok(headers
        .get("x-laned-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|a| {
            (1..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .unwrap_or(DEFAULT_ACTOR)
        .to_owned())
}

/// `POST /v1/admin/sync`: try the back-end now, re-check stuck sales now,
/// and lift a lane-level pause to find out whether it is fixed.
pub(super) async fn sync(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = authorise(&s, &headers)?;
    let Some(drain) = &s.inner.drain else {
        return Err(ApiError::no_backend());
    };
    s.store()
        .sync_now(s.inner.clock.wall(), actor.clone(), "sync requested".into())
        .await?;
    drain.probe();
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
) -> Result<Response, ApiError> {
    let actor = authorise(&s, &headers)?;
    super::require_json(&headers)?;
    let body = body.map_err(|r| {
        ApiError::invalid_json(&serde_json::Error::io(std::io::Error::other(r.body_text())))
    })?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_json(&e))?;
    let reason = doc
        .get("reason")
        .and_then(|r| r.as_str())
        .map(str::trim)
        .filter(|r| (1..=500).contains(&r.chars().count()))
        .ok_or_else(|| {
            ApiError::validation_failed(vec![super::sale::FieldError {
                field: "reason".into(),
                message: "must say why, in 1 to 500 characters".into(),
            }])
        })?
        .to_owned();
    let Some(g) = s
        .store()
        .acknowledge_restore(s.inner.clock.wall(), actor.clone(), reason)
        .await?
    else {
        return Err(ApiError::nothing_to_acknowledge());
    };
    s.inner.restore.send_replace(None);
    let continues_after: std::collections::BTreeMap<&String, i64> =
        g.series.iter().map(|(k, b)| (k, b.backend)).collect();
    tracing::warn!(actor = %actor, series = ?continues_after, "restored lane acknowledged; numbering continues above the back-end's numbers");
    Ok((
        StatusCode::OK,
        Json(json!({"status": "acknowledged", "continues_after": continues_after})),
    )
        .into_response())
}
