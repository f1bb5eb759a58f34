//! The HTTP surface of the lane: the till API, the status endpoint and page,
//! the admin routes and `/metrics`.
//!
//! Requests pass one guard (the `guard` middleware) that checks the `Host`
//! header (DNS rebinding) and the API token when one is configured, before
//! any handler runs. Handlers that take a body require JSON.

mod admin;
mod error;
mod page;

mod sales;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::common::http::HttpError;

use crate::common::clock::Clock;
use crate::common::secret::Secret;
use crate::lane::drain::DrainHandle;
use crate::lane::guard::{Ceiling, Lane, Numbers};
use crate::lane::messages::Locale;
use crate::lane::store::{RestoreGuard, Store};

/// Largest request body: a sale of [`crate::contract::sale::MAX_LINES`] long lines fits.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    clock: Arc<dyn Clock>,
    started: Duration,
    ceiling: Ceiling,
    numbers: Numbers,
    metrics: Arc<crate::lane::metrics::Metrics>,
    /// The automatic day closing's time and its next run.
    closing: crate::lane::guard::ClosingSchedule,
    access: Access,
    drain: Option<DrainHandle>,
    /// The language of the page and the cashier's sentences, when the
    /// request asks for none laned speaks.
    locale: Locale,
}

/// Who may use the API: the till's token (when configured), the admin
/// token, and the `Host` names accepted.
pub struct Access {
    api_token: Option<Secret>,
    admin_token: Secret,
    allowed_hosts: Vec<String>,
}

impl Access {
    /// `listen` and `extra_hosts` are accepted as `Host` names besides
    /// loopback's.
    pub fn new(
        api_token: Option<Secret>,
        admin_token: Secret,
        listen: SocketAddr,
        extra_hosts: &[String],
    ) -> Access {
        let mut allowed_hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        allowed_hosts.push(listen.ip().to_string());
        allowed_hosts.extend(extra_hosts.iter().map(|h| h.to_ascii_lowercase()));
        Access {
            api_token,
            admin_token,
            allowed_hosts,
        }
    }
}

impl AppState {
    /// The state of `lane`'s API; `drain` when a back-end is configured;
    /// `locale` the lane's language.
    pub fn new(lane: Lane, access: Access, drain: Option<DrainHandle>, locale: Locale) -> Self {
        let Lane {
            store,
            clock,
            ceiling,
            numbers,
            metrics,
            closing,
        } = lane;
        AppState {
            inner: Arc::new(Shared {
                started: clock.monotonic(),
                store,
                clock,
                ceiling,
                numbers,
                metrics,
                closing,
                access,
                drain,
                locale,
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn ceiling(&self) -> &Ceiling {
        &self.inner.ceiling
    }

    /// The words to answer a request in: its `Accept-Language` when laned
    /// speaks it, else the lane's `locale`.
    fn words(&self, headers: &axum::http::HeaderMap) -> crate::lane::messages::Words {
        let asked = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        crate::lane::messages::Words(Locale::negotiate(asked, self.inner.locale))
    }

    /// The restored-lane guard, if one is raised.
    fn restore_guard(&self) -> Option<RestoreGuard> {
        self.inner.numbers.guard()
    }
}

/// The router with every route and the guard.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/transactions", post(sales::new_transaction))
        .route("/v1/sales", post(sales::post_sale).get(sales::list_sales))
        .route("/v1/sales/{id}", put(sales::put_sale).get(sales::get_sale))
        .route("/", get(page::page))
        .route("/v1/status/sync", post(page::sync))
        .route("/v1/status", get(status::status))
        .route("/metrics", get(status::metrics))
        .route("/v1/admin/sync", post(admin::sync))
        .route(
            "/v1/admin/acknowledge-restore",
            post(admin::acknowledge_restore),
        )
        .route("/v1/admin/sales/{id}/retry", post(admin::retry))
        .route("/v1/admin/sales/{id}/resolve", post(admin::resolve))
        .route("/v1/admin/retry-stuck", post(admin::retry_all_stuck))
        .route("/v1/admin/close-day", post(admin::close_day))
        .fallback(|req: Request| async move { error::no_route(req.uri().path()) })
        .method_not_allowed_fallback(|| async { error::method_not_allowed() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Host, token and content-type checks for every request.
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| host_allowed(h, &s.inner.access.allowed_hosts)) {
        tracing::warn!(host = ?host, "refused a request for a foreign Host");
        return error::forbidden_host(host).into_response();
    }
    // Admin routes check the admin token themselves.
    let admin = req.uri().path().starts_with("/v1/admin/");
    if let Some(token) = s.inner.access.api_token.as_ref().filter(|_| !admin)
        && !bearer_matches(bearer(req.headers()), token)
    {
        return error::unauthorized().into_response();
    }
    next.run(req).await
}

/// Writes with a body must be JSON: a browser cannot send that cross-site
/// without a CORS preflight, so a web page on the till cannot post sales.
/// Checked by the handlers that take a body, so that a wrong path or method
/// still answers 404 or 405.
pub(crate) fn require_json(headers: &axum::http::HeaderMap) -> Result<(), HttpError> {
    if is_json(headers.get(header::CONTENT_TYPE)) {
        Ok(())
    } else {
        Err(error::unsupported_media_type())
    }
}

fn is_json(ct: Option<&header::HeaderValue>) -> bool {
    ct.and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a `Host` header value (with or without port) names us.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    allowed.contains(&name)
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
}

/// Whether `sent` (the part after `Bearer `) is `token`, compared in
/// constant time.
fn bearer_matches(sent: Option<&str>, token: &Secret) -> bool {
    sent.is_some_and(|t| constant_time_eq(t.as_bytes(), token.expose().as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check_accepts_loopback_names_with_or_without_port() {
        let allowed: Vec<String> = ["localhost", "127.0.0.1", "::1", "till-3.lan"]
            .into_iter()
            .map(String::from)
            .collect();
        for ok in [
            "localhost",
            "LOCALHOST:7410",
            "127.0.0.1:7410",
            "[::1]:7410",
            "[::1]",
            "till-3.lan.",
            "till-3.lan:80",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil",
            "",
            "[::2]:7410",
            "10.0.0.1",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn json_content_type_check() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("Application/JSON; charset=utf-8"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(Some(&v("application/x-www-form-urlencoded"))));
        assert!(!is_json(None));
    }
}
