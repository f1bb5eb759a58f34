//! Admin API: operator actions, authorised by the admin token (the file
//! `admin-token` in the data directory, created at first start, 0600).

use axum::Json;
use axum::extract::State;
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
