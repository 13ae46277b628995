//! [`Problem`]: every rejection of HTTP mode as a typed value — a [`ProblemKind`] with a fixed
//! status, `type` and `code` — rendered as `application/problem+json` (RFC 9457).

use std::fmt;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::Error;

/// Why a request was refused, or what happened to it. Each kind has one status, one problem
/// `type` (`urn:idempotent:problem:<slug>`) and one stable machine-readable `code` (the body's
/// `code` member): branch on the code, not on a status that axum's own rejections use too
/// (422, 400).
///
/// | kind | status | `code` | when |
/// |---|---|---|---|
/// | `MissingKey` | 400 | `missing_key` | the key header is absent and the handler requires one |
/// | `InvalidKey` | 400 | `invalid_key` | the key is empty, too long, not visible ASCII, or sent twice |
/// | `MissingScope` | 400 | `missing_scope` | the layer's scope found no principal (unless unscoped requests are allowed) |
/// | `UnreadableBody` | 400 | `unreadable_body` | the request body broke off or was malformed (layer only) |
/// | `InFlight` | 409 + `Retry-After` | `in_flight` | a request with this key is still running |
/// | `NotReplayable` | 409 | `not_replayable` | it ran, but its response was too large or broken to keep |
/// | `Superseded` | 409 | `superseded` | it ran, but its claim lapsed (a handler past its lease, an unreachable store) before its response was stored, and none is stored |
/// | `BodyTooLarge` | 413 | `body_too_large` | the request body is over the layer's limit |
/// | `KeyReused` | 422 | `key_reused` | the key was used with another request (method, route, query or body) |
/// | `CorruptRecord` | 500 | `corrupt_record` | the stored record cannot be read |
/// | `HandlerPanicked` | 500 | `handler_panicked` | the handler panicked; its key is held until the lease lapses |
/// | `ResponseFailed` | 500 | `response_failed` | it ran, but its response body failed; it will not run again |
/// | `Internal` | 500 | `internal` | a misconfiguration (invalid duration, no store configured, …) |
/// | `StoreUnavailable` | 503 + `Retry-After` | `store_unavailable` | the idempotency store did not answer |
/// | `StoreFull` | 503 + `Retry-After` | `store_full` | the idempotency store is at its capacity bound |
/// | `Overloaded` | 503 + `Retry-After` | `overloaded` | as many handlers as allowed run detached, or the service is shutting down; nothing ran |
///
/// ```
/// use idempotent_runtime::service::ProblemKind;
///
/// assert_eq!(ProblemKind::KeyReused.status(), 422);
/// assert_eq!(ProblemKind::KeyReused.code(), "key_reused");
/// assert_eq!(ProblemKind::InFlight.retry_after(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// 400: the key header is missing.
    MissingKey,
    /// 400: the key is malformed.
    InvalidKey,
    /// 400: no principal for a scoped layer.
    MissingScope,
    /// 400: the request body could not be read.
    UnreadableBody,
    /// 409: a request with this key is in flight.
    InFlight,
    /// 409: it ran; its response cannot be replayed.
    NotReplayable,
    /// 409: it ran; its claim lapsed before its response was stored, and none is stored.
    Superseded,
    /// 413: the request body is over the limit.
    BodyTooLarge,
    /// 422: the key was used with another request.
    KeyReused,
    /// 500: the stored record cannot be read.
    CorruptRecord,
    /// 500: the handler panicked.
    HandlerPanicked,
    /// 500: the handler ran; its response body failed.
    ResponseFailed,
    /// 500: a misconfiguration.
    Internal,
    /// 503: the store did not answer.
    StoreUnavailable,
    /// 503: the store is full.
    StoreFull,
    /// 503: the limit of detached handlers is reached, or the service is shutting down.
    Overloaded,
}

impl ProblemKind {
    /// The HTTP status of this kind.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::MissingScope | Self::UnreadableBody => {
                StatusCode::BAD_REQUEST
            }
            Self::InFlight | Self::NotReplayable | Self::Superseded => StatusCode::CONFLICT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CorruptRecord | Self::HandlerPanicked | Self::ResponseFailed | Self::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::StoreUnavailable | Self::StoreFull | Self::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The stable machine-readable code: the body's `code` member.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::MissingScope => "missing_scope",
            Self::UnreadableBody => "unreadable_body",
            Self::InFlight => "in_flight",
            Self::NotReplayable => "not_replayable",
            Self::Superseded => "superseded",
            Self::BodyTooLarge => "body_too_large",
            Self::KeyReused => "key_reused",
            Self::CorruptRecord => "corrupt_record",
            Self::HandlerPanicked => "handler_panicked",
            Self::ResponseFailed => "response_failed",
            Self::Internal => "internal",
            Self::StoreUnavailable => "store_unavailable",
            Self::StoreFull => "store_full",
            Self::Overloaded => "overloaded",
        }
    }

    /// The short human-readable title: the body's `title` member.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::MissingKey => "Idempotency key missing",
            Self::InvalidKey => "Invalid idempotency key",
            Self::MissingScope => "Request scope missing",
            Self::UnreadableBody => "Request body unreadable",
            Self::InFlight => "Request in progress",
            Self::NotReplayable => "Request already processed",
            Self::Superseded => "Request superseded",
            Self::BodyTooLarge => "Request body too large",
            Self::KeyReused => "Idempotency key reused",
            Self::CorruptRecord => "Stored record unreadable",
            Self::HandlerPanicked => "Handler failed",
            Self::ResponseFailed => "Response failed",
            Self::Internal => "Idempotency layer failed",
            Self::StoreUnavailable => "Idempotency store unavailable",
            Self::StoreFull => "Idempotency store full",
            Self::Overloaded => "Service overloaded",
        }
    }

    /// Seconds a client should wait before retrying, where waiting helps.
    #[must_use]
    pub const fn retry_after(self) -> Option<u32> {
        match self {
            Self::InFlight | Self::Overloaded => Some(1),
            Self::StoreUnavailable => Some(2),
            Self::StoreFull => Some(5),
            _ => None,
        }
    }

    /// The `type` URI: `urn:idempotent:problem:<code with dashes>`.
    #[must_use]
    pub fn type_uri(self) -> String {
        format!("urn:idempotent:problem:{}", self.code().replace('_', "-"))
    }
}

/// A rejection: a [`ProblemKind`] and a detail for this occurrence. `Display` + `Error` +
/// `IntoResponse`, so a handler can return it and a caller can match its [`kind`](Self::kind).
///
/// ```
/// use axum::response::IntoResponse;
/// use idempotent_runtime::{Error, service::{Problem, ProblemKind}};
///
/// let problem = Problem::from(Error::FingerprintMismatch);
/// assert_eq!(problem.kind(), ProblemKind::KeyReused);
/// let response = problem.into_response();
/// assert_eq!(response.status(), 422);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: ProblemKind,
    detail: String,
}

impl Problem {
    /// A problem of `kind`, with `detail` for this occurrence.
    #[must_use]
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// 400: the key header named `header` is missing.
    #[must_use]
    pub fn missing_key(header: &str) -> Self {
        Self::new(
            ProblemKind::MissingKey,
            format!("this endpoint requires an `{header}` header with a unique key per operation"),
        )
    }

    /// 400: the key is malformed; `detail` says how.
    #[must_use]
    pub fn invalid_key(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::InvalidKey, detail)
    }

    /// 400: the layer's scope found no principal for this request.
    #[must_use]
    pub fn missing_scope() -> Self {
        Self::new(
            ProblemKind::MissingScope,
            "this endpoint keeps idempotency keys per principal, and none was found for the request; authenticate, or ask the operator to allow unscoped requests",
        )
    }

    /// 413: the request body is over `limit` bytes.
    #[must_use]
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            ProblemKind::BodyTooLarge,
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 400: the request body could not be read (the client broke off, or sent a malformed
    /// body).
    #[must_use]
    pub fn unreadable_body(error: &dyn fmt::Display) -> Self {
        Self::new(
            ProblemKind::UnreadableBody,
            format!("the request body could not be read: {error}"),
        )
    }

    /// 500: the handler ran, but its response body failed mid-stream. The key is completed
    /// as done-not-replayable: a retry learns it ran and never runs it again.
    #[must_use]
    pub fn response_failed() -> Self {
        Self::new(
            ProblemKind::ResponseFailed,
            "the request ran, but its response failed before it was complete; it will not run again with this key",
        )
    }

    /// What kind of problem this is.
    #[must_use]
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The `type` URI: `urn:idempotent:problem:<slug>`.
    #[must_use]
    pub fn type_uri(&self) -> String {
        self.kind.type_uri()
    }

    /// The human-readable detail.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The JSON body: `type`, `title`, `status`, `detail` and the extension member `code`.
    #[must_use]
    pub fn body(&self) -> String {
        serde_json::json!({
            "type": self.type_uri(),
            "title": self.kind.title(),
            "status": self.status().as_u16(),
            "detail": self.detail,
            "code": self.kind.code(),
        })
        .to_string()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.title(), self.detail)
    }
}

impl std::error::Error for Problem {}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let detail = error.to_string();
        let kind = match error {
            Error::InvalidKey(_) => ProblemKind::InvalidKey,
            Error::InFlight => ProblemKind::InFlight,
            Error::NotReplayable => ProblemKind::NotReplayable,
            Error::StaleFencingToken => {
                return Self::new(
                    ProblemKind::Superseded,
                    "this request ran, but its claim on the key lapsed before its response could be stored (the handler ran past its lease, or the idempotency store was unreachable), and no response is stored for the key",
                );
            }
            Error::FingerprintMismatch => {
                return Self::new(
                    ProblemKind::KeyReused,
                    format!("{detail}: send a new key for a new request"),
                );
            }
            Error::StoreUnavailable(_) => {
                return Self::new(
                    ProblemKind::StoreUnavailable,
                    "the idempotency store did not answer; nothing was executed, retry with the same key",
                );
            }
            Error::CapacityExceeded { .. } => {
                return Self::new(
                    ProblemKind::StoreFull,
                    format!("{detail}; nothing was executed, retry with the same key later"),
                );
            }
            Error::Corrupt(_) => {
                return Self::new(
                    ProblemKind::CorruptRecord,
                    "the stored record for this key cannot be read; it was not executed again",
                );
            }
            Error::HandlerPanicked => ProblemKind::HandlerPanicked,
            Error::Fingerprint(_)
            | Error::InvalidDuration { .. }
            | Error::NoStore
            | Error::Misconfigured(_)
            | Error::DefaultStoreAlreadySet => ProblemKind::Internal,
        };
        Self::new(kind, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status(), self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.kind.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_status_type_and_code() {
        let kinds = [
            ProblemKind::MissingKey,
            ProblemKind::InvalidKey,
            ProblemKind::MissingScope,
            ProblemKind::UnreadableBody,
            ProblemKind::InFlight,
            ProblemKind::NotReplayable,
            ProblemKind::Superseded,
            ProblemKind::BodyTooLarge,
            ProblemKind::KeyReused,
            ProblemKind::CorruptRecord,
            ProblemKind::HandlerPanicked,
            ProblemKind::ResponseFailed,
            ProblemKind::Internal,
            ProblemKind::StoreUnavailable,
            ProblemKind::StoreFull,
            ProblemKind::Overloaded,
        ];
        let codes: std::collections::HashSet<&str> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), kinds.len(), "codes are distinct");
        let problem = Problem::new(ProblemKind::KeyReused, "reused");
        let body: serde_json::Value = serde_json::from_str(&problem.body()).expect("json");
        assert_eq!(body["code"], "key_reused");
        assert_eq!(body["type"], "urn:idempotent:problem:key-reused");
        assert_eq!(body["status"], 422);
        assert_eq!(problem.to_string(), "Idempotency key reused: reused");
    }
}
