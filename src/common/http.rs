//! The one HTTP error type of both daemons: every error answer, the till
//! API's and the back-end's, is an [`HttpError`] and leaves as the same
//! JSON body ([`ErrorBody`]) with the same headers. Which errors exist and
//! what they say is each server's own catalogue (`lane::api::error`,
//! `salemap::api`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of every error answer: a stable code, a sentence and details.
/// The lane's drain reads the back-end's with the same type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code, e.g. `payload_mismatch`.
    pub code: String,
    /// Facts a program can use (field paths, limits, the holder of a
    /// number); `null` when there are none. Declared before `message` so
    /// the keys leave in alphabetical order, as they always have.
    #[serde(default)]
    pub details: Value,
    /// Human sentence.
    #[serde(default)]
    pub message: String,
}

/// An error answer: status, stable code, sentence, details, and the
/// `Retry-After` to send with it.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
    /// `Retry-After` in seconds: 1 for every `503` unless set otherwise.
    retry_after: Option<u32>,
}

impl HttpError {
    /// An answer with no details; a `503` says `Retry-After: 1`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        }
    }

    /// The same answer with `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The same answer with `Retry-After: seconds`.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The sentence.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code.to_owned(),
            details: self.details,
            message: self.message,
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_body_is_code_details_message_and_a_503_says_when_to_retry() {
        let r = HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Try again.")
            .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"code":"unavailable","details":null,"message":"Try again."}"#
        );
        let r = HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Token.").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
    }
}
