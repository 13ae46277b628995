//! [`Problem`]: every rejection of HTTP mode as an `application/problem+json` response
//! (RFC 9457).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::Error;

/// A rejection, rendered as `application/problem+json` (RFC 9457) with a stable `type`
/// (`urn:idempotent:problem:<slug>`), the HTTP status, a title and a detail, plus
/// `Retry-After` where waiting helps.
///
/// | problem | status | when |
/// |---|---|---|
/// | `missing-key` | 400 | the key header is absent and the handler requires one |
/// | `invalid-key` | 400 | the key is empty, too long, not visible ASCII, or sent twice |
/// | `in-flight` | 409 + `Retry-After` | a request with this key is still running |
/// | `not-replayable` | 409 | it ran, but its response was too large or unreadable to keep |
/// | `superseded` | 409 | this request ran, but its claim lapsed (a slow handler, a stalled process, an unreachable store) before its response was stored, and no response is stored for the key |
/// | `response-failed` | 500 | the handler ran, but its response body failed before it was complete; it will not run again for this key |
/// | `missing-scope` | 400 | the layer's scope found no principal for the request (unless unscoped requests are allowed) |
/// | `body-too-large` | 413 | the request body is over the configured limit |
/// | `unreadable-body` | 400 | the request body broke off or was malformed (layer only) |
/// | `key-reused` | 422 | the key was used with another request (method, route, query or body) |
/// | `store-unavailable` | 503 + `Retry-After` | the idempotency store did not answer |
/// | `store-full` | 503 + `Retry-After` | the idempotency store is at its capacity bound |
/// | `corrupt-record` | 500 | the stored record cannot be read |
/// | `handler-panicked` | 500 | the handler panicked; its key is held until the lease lapses |
/// | `internal` | 500 | a misconfiguration (invalid duration, no store configured, …) |
///
/// ```
/// use axum::response::IntoResponse;
/// use idempotent_runtime::{Error, http::Problem};
///
/// let response = Problem::from(Error::FingerprintMismatch).into_response();
/// assert_eq!(response.status(), 422);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u32>,
}

impl Problem {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            slug,
            title,
            detail,
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400: the key header named `header` is missing.
    #[must_use]
    pub fn missing_key(header: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing-key",
            "Idempotency key missing",
            format!("this endpoint requires an `{header}` header with a unique key per operation"),
        )
    }

    /// 400: the key is malformed; `detail` says how.
    #[must_use]
    pub fn invalid_key(detail: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid-key",
            "Invalid idempotency key",
            detail,
        )
    }

    /// 413: the request body is over `limit` bytes.
    #[must_use]
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 400: the request body could not be read (the client broke off, or sent a malformed
    /// body).
    #[must_use]
    pub fn unreadable_body(error: &dyn std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unreadable-body",
            "Request body unreadable",
            format!("the request body could not be read: {error}"),
        )
    }

    /// 400: the layer's scope found no principal for this request.
    #[must_use]
    pub fn missing_scope() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing-scope",
            "Request scope missing",
            "this endpoint keeps idempotency keys per principal, and none was found for the request; authenticate, or ask the operator to allow unscoped requests".to_owned(),
        )
    }

    /// 500: the handler ran, but its response body failed mid-stream. The key is completed
    /// as done-not-replayable: a retry learns it ran and never runs it again.
    #[must_use]
    pub fn response_failed() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "response-failed",
            "Response failed",
            "the request ran, but its response failed before it was complete; it will not run again with this key".to_owned(),
        )
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `type` URI: `urn:idempotent:problem:<slug>`.
    #[must_use]
    pub fn type_uri(&self) -> String {
        format!("urn:idempotent:problem:{}", self.slug)
    }

    /// The human-readable detail.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        })
        .to_string()
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let detail = error.to_string();
        match error {
            Error::InvalidKey(_) => Self::invalid_key(detail),
            Error::InFlight => Self::new(
                StatusCode::CONFLICT,
                "in-flight",
                "Request in progress",
                detail,
            )
            .retry_after(1),
            Error::NotReplayable => Self::new(
                StatusCode::CONFLICT,
                "not-replayable",
                "Request already processed",
                detail,
            ),
            Error::StaleFencingToken => Self::new(
                StatusCode::CONFLICT,
                "superseded",
                "Request superseded",
                "this request ran, but its claim on the key lapsed before its response could be stored (the handler ran past its lease, or the idempotency store was unreachable), and no response is stored for the key".to_owned(),
            ),
            Error::FingerprintMismatch => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "key-reused",
                "Idempotency key reused",
                format!("{detail}: send a new key for a new request"),
            ),
            Error::StoreUnavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "Idempotency store unavailable",
                "the idempotency store did not answer; nothing was executed, retry with the same key".to_owned(),
            )
            .retry_after(2),
            Error::Corrupt(_) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt-record",
                "Stored record unreadable",
                "the stored record for this key cannot be read; it was not executed again".to_owned(),
            ),
            Error::CapacityExceeded { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-full",
                "Idempotency store full",
                format!("{detail}; nothing was executed, retry with the same key later"),
            )
            .retry_after(5),
            Error::HandlerPanicked => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler-panicked",
                "Handler failed",
                detail,
            ),
            Error::Fingerprint(_)
            | Error::InvalidDuration { .. }
            | Error::NoStore
            | Error::DefaultStoreAlreadySet => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Idempotency layer failed",
                detail,
            ),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
