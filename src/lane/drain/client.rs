//! The lane's side of the back-end contract over HTTP(S).

use std::sync::RwLock;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use super::backoff::parse_retry_after;
use super::classify::{ErrorInfo, Outcome, classify_failure};
use crate::common::http::ErrorBody;
use crate::common::secret::Secret;
use crate::contract::{self, BatchResponse, Heartbeat, Posted};

/// Why the back-end URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not a URL, or not http(s).
    #[error("backend_url {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as configured, credentials removed.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built (TLS roots, …).
    #[error("cannot set up the HTTPS client")]
    Build(#[source] reqwest::Error),
}

/// One answer for one sale, with what the attempt record needs.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What it means.
    pub outcome: Outcome,
    /// The HTTP status, when there was one.
    pub http_status: Option<u16>,
}

/// What a batch request came to.
#[derive(Debug)]
pub enum BatchAnswer {
    /// One answer per sale, in request order.
    Items(Vec<Answer>),
    /// The batch as a whole failed in a way that applies to every sale
    /// (network, 5xx, 401…).
    Whole(Answer),
    /// The back-end has no batch route (404/405): use single `PUT`s.
    Unsupported,
    /// The back-end refused the batch request itself (400/413/422): send
    /// these sales one by one to find out which is at fault.
    SendSingly,
}

/// HTTP client for one back-end.
pub struct BackendClient {
    http: reqwest::Client,
    base: Url,
    lane_id: String,
    token: RwLock<Option<Secret>>,
    /// The `Date` header of the last answer, until taken.
    last_date: std::sync::Mutex<Option<jiff::Timestamp>>,
}

impl std::fmt::Debug for BackendClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendClient")
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// `url` without user name and password, for display and logs.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<invalid URL>".into(),
    }
}

impl BackendClient {
    /// A client for the back-end at `base_url`. Plain `http://` is allowed
    /// only for a back-end on this machine; credentials in the URL are
    /// dropped (the bearer token is the lane's credential).
    pub fn new(
        base_url: &str,
        lane_id: &str,
        token: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: redact_url(base_url),
            reason: reason.into(),
        };
        let mut base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        let loopback = match base.host_str() {
            Some(h) if h.eq_ignore_ascii_case("localhost") => true,
            Some(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => return Err(bad("it has no host")),
        };
        match base.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(bad(
                    "plain http:// is only allowed for a back-end on this machine; use https://",
                ));
            }
            _ => return Err(bad("it must start with https://")),
        }
        if !base.username().is_empty() || base.password().is_some() {
            tracing::warn!(
                "credentials in backend_url are ignored; the lane authenticates with its bearer token"
            );
            let _ = base.set_username("");
            let _ = base.set_password(None);
        }
        // Paths are joined as "{base}/v1/…": keep the base without a
        // trailing slash.
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A PUT must reach the configured back-end or fail; never wander.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("laned/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(BackendClient {
            http,
            base,
            lane_id: lane_id.to_owned(),
            token: RwLock::new(token),
            last_date: std::sync::Mutex::new(None),
        })
    }

    /// The `Date` header of the last answer since the last call, if any.
    pub fn take_date(&self) -> Option<jiff::Timestamp> {
        self.last_date
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn note_date(&self, headers: &HeaderMap) {
        let date = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| jiff::fmt::rfc2822::parse(v).ok())
            .map(|z| z.timestamp());
        if date.is_some() {
            *self.last_date.lock().unwrap_or_else(|e| e.into_inner()) = date;
        }
    }

    /// The lane this client posts for.
    pub fn lane_id(&self) -> &str {
        &self.lane_id
    }

    /// The base URL, without credentials.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// Replaces the bearer token (after a config reload).
    pub fn set_token(&self, token: Option<Secret>) {
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &*self.token.read().unwrap_or_else(|e| e.into_inner()) {
            Some(t) => rb.header(AUTHORIZATION, format!("Bearer {}", t.expose())),
            None => rb,
        }
    }

    /// `PUT {base}/v1/sales/{id}` with the stored envelope bytes.
    pub async fn put_sale(
        &self,
        transaction_id: &str,
        body: Vec<u8>,
        now: jiff::Timestamp,
    ) -> Answer {
        self.put_document("sales", transaction_id, body, now).await
    }

    /// `PUT {base}/v1/closings/{id}` with a day closing's stored bytes
    /// (docs/journal.md).
    pub async fn put_closing(
        &self,
        transaction_id: &str,
        body: Vec<u8>,
        now: jiff::Timestamp,
    ) -> Answer {
        self.put_document("closings", transaction_id, body, now)
            .await
    }

    /// `PUT {base}/v1/{collection}/{id}`, idempotent on the id.
    async fn put_document(
        &self,
        collection: &str,
        transaction_id: &str,
        body: Vec<u8>,
        now: jiff::Timestamp,
    ) -> Answer {
        let rb = self
            .request(
                reqwest::Method::PUT,
                &format!("/v1/{collection}/{transaction_id}"),
            )
            .header(contract::IDEMPOTENCY_KEY, transaction_id)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.note_date(&headers);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return transport(e),
        };
        let outcome = if status == StatusCode::OK || status == StatusCode::CREATED {
            match serde_json::from_slice::<Posted>(&bytes) {
                Ok(p) if p.transaction_id.to_string() == transaction_id => Outcome::Posted {
                    doc_no: p.doc_no,
                    posted_at: p.posted_at,
                    ack: p.ack,
                    certificate: p.certificate,
                },
                _ => bad_response(status.as_u16()),
            }
        } else {
            classify_failure(status.as_u16(), error_info(&headers, &bytes, now))
        };
        Answer {
            outcome,
            http_status: Some(status.as_u16()),
        }
    }

    /// `POST {base}/v1/sales:batch` with the stored envelopes of `ids`.
    pub async fn post_batch(
        &self,
        ids: &[String],
        envelopes: &[&[u8]],
        now: jiff::Timestamp,
    ) -> BatchAnswer {
        let body = contract::batch_body(&self.lane_id, envelopes.iter().copied());
        let rb = self
            .request(reqwest::Method::POST, "/v1/sales:batch")
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return BatchAnswer::Whole(transport(e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.note_date(&headers);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return BatchAnswer::Whole(transport(e)),
        };
        match status {
            200 => {}
            404 | 405 => return BatchAnswer::Unsupported,
            400 | 413 | 422 => return BatchAnswer::SendSingly,
            _ => {
                return BatchAnswer::Whole(Answer {
                    outcome: classify_failure(status, error_info(&headers, &bytes, now)),
                    http_status: Some(status),
                });
            }
        }
        let Ok(parsed) = serde_json::from_slice::<BatchResponse>(&bytes) else {
            return BatchAnswer::Whole(Answer {
                outcome: bad_response(status),
                http_status: Some(status),
            });
        };
        let retry_after = error_info(&headers, &[], now).retry_after;
        // Match results to requests by id: a result the back-end left out
        // counts as not delivered.
        let items = ids
            .iter()
            .map(|id| {
                let Some(r) = parsed
                    .results
                    .iter()
                    .find(|r| r.transaction_id.to_string() == *id)
                else {
                    return Answer {
                        outcome: Outcome::Retry {
                            code: "bad_response".into(),
                            message: "the back-end's batch answer has no result for this sale"
                                .into(),
                            retry_after: None,
                        },
                        http_status: Some(status),
                    };
                };
                let outcome = match (r.status, &r.doc_no, &r.posted_at) {
                    // docs/backend-contract.md makes posted_at optional for batch items:
                    // without it, the time of the answer stands in.
                    (200 | 201, Some(doc_no), posted_at) => Outcome::Posted {
                        doc_no: doc_no.clone(),
                        posted_at: posted_at
                            .clone()
                            .unwrap_or_else(|| crate::common::time::fmt_ts(now)),
                        ack: r.ack.clone(),
                        certificate: None,
                    },
                    (200 | 201, _, _) => bad_response(r.status),
                    (s, _, _) => classify_failure(
                        s,
                        ErrorInfo {
                            code: r.code.clone(),
                            message: r.message.clone(),
                            retry_after,
                        },
                    ),
                };
                Answer {
                    outcome,
                    http_status: Some(r.status),
                }
            })
            .collect();
        BatchAnswer::Items(items)
    }

    /// `GET {base}/v1/heartbeat?lane_id={lane}`: the link, the back-end's
    /// clock, and the highest receipt numbers it holds for this lane.
    pub async fn heartbeat(&self, now: jiff::Timestamp) -> Result<Heartbeat, Answer> {
        // A lane id is letters, digits, '-' and '_' (checked by the
        // config): nothing to escape. The heartbeat's `Date` is noted (the
        // back-end's clock, for status).
        self.get_json(
            &format!("/v1/heartbeat?lane_id={}", self.lane_id),
            true,
            now,
        )
        .await
    }

    /// `GET {base}/v1/lanes/{lane_id}/days/{business_date}/documents`: one
    /// page of the documents the back-end holds for a lane and business
    /// day (`laned report`), after the id `after`.
    pub async fn day_documents(
        &self,
        lane_id: &str,
        business_date: &str,
        after: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<crate::contract::DayDocuments, Answer> {
        // Lane ids, dates and v4 UUIDs need no escaping.
        let mut path = format!("/v1/lanes/{lane_id}/days/{business_date}/documents");
        if let Some(a) = after {
            path.push_str("?after=");
            path.push_str(a);
        }
        self.get_json(&path, false, now).await
    }

    /// `GET {base}/v1/lanes/{lane_id}/days/{business_date}`: what the
    /// back-end holds for one lane and business day (`laned report`).
    pub async fn day(
        &self,
        lane_id: &str,
        business_date: &str,
        now: jiff::Timestamp,
    ) -> Result<crate::contract::Day, Answer> {
        self.get_json(
            &format!("/v1/lanes/{lane_id}/days/{business_date}"),
            false,
            now,
        )
        .await
    }

    /// A `GET` whose `200` answer is a JSON document; any other status is
    /// classified like a sale's. `note_date`: keep the answer's `Date`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        note_date: bool,
        now: jiff::Timestamp,
    ) -> Result<T, Answer> {
        let resp = match self.request(reqwest::Method::GET, path).send().await {
            Ok(r) => r,
            Err(e) => return Err(transport(e)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if note_date {
            self.note_date(&headers);
        }
        let bytes = resp.bytes().await.map_err(transport)?;
        if status != 200 {
            return Err(Answer {
                outcome: classify_failure(status, error_info(&headers, &bytes, now)),
                http_status: Some(status),
            });
        }
        serde_json::from_slice(&bytes).map_err(|_| Answer {
            outcome: bad_response(status),
            http_status: Some(status),
        })
    }
}

/// A request that got no complete answer.
fn transport(e: reqwest::Error) -> Answer {
    let code = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "network"
    };
    // Without the URL: it is in status already, and messages must never
    // carry anything that could hold credentials.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    Answer {
        outcome: Outcome::Retry {
            code: code.into(),
            message,
            retry_after: None,
        },
        http_status: None,
    }
}

fn bad_response(status: u16) -> Outcome {
    Outcome::Retry {
        code: "bad_response".into(),
        message: format!("the back-end answered {status} without a usable document in the body"),
        retry_after: None,
    }
}

fn error_info(headers: &HeaderMap, body: &[u8], now: jiff::Timestamp) -> ErrorInfo {
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    ErrorInfo {
        code: parsed.as_ref().map(|b| b.code.clone()),
        message: parsed.map(|b| b.message),
        retry_after: headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now)),
    }
}
