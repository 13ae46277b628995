//! gRPC under [`IdempotencyLayer`](super::IdempotencyLayer): a request whose `content-type` is
//! `application/grpc…` gets its rejections as gRPC statuses (a trailers-only response: HTTP
//! 200, `grpc-status`, `grpc-message`, and `grpc-status-details-bin` with a
//! `google.rpc.ErrorInfo` and, where waiting helps, a `google.rpc.RetryInfo`), and its
//! response is stored by its `grpc-status`, not by its HTTP status (always 200).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use http::{HeaderMap, HeaderValue, header};

use super::{Problem, ProblemKind};

/// The `grpc-status` of a successful call.
pub(crate) const OK: i32 = 0;
/// What a response without a readable `grpc-status` counts as (the gRPC spec's `UNKNOWN`).
const UNKNOWN: i32 = 2;

/// The `ErrorInfo.domain` of the layer's own rejections.
const DOMAIN: &str = "idempotent";

impl ProblemKind {
    /// The gRPC status code this kind is answered with to a gRPC request:
    ///
    /// | kinds | gRPC status |
    /// |---|---|
    /// | `MissingKey`, `InvalidKey`, `MissingScope`, `UnreadableBody` | `INVALID_ARGUMENT` (3) |
    /// | `KeyReused`, `NotReplayable` | `FAILED_PRECONDITION` (9): do not retry with this key |
    /// | `InFlight` (with `RetryInfo`), `Superseded` | `ABORTED` (10) |
    /// | `BodyTooLarge` | `RESOURCE_EXHAUSTED` (8) |
    /// | `CorruptRecord`, `HandlerPanicked`, `ResponseFailed`, `Internal` | `INTERNAL` (13) |
    /// | `StoreUnavailable`, `StoreFull`, `Overloaded` (with `RetryInfo`) | `UNAVAILABLE` (14) |
    ///
    /// ```
    /// use idempotent_runtime::service::ProblemKind;
    ///
    /// assert_eq!(ProblemKind::KeyReused.grpc_code(), 9);
    /// assert_eq!(ProblemKind::InFlight.grpc_code(), 10);
    /// ```
    #[must_use]
    pub const fn grpc_code(self) -> i32 {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::MissingScope | Self::UnreadableBody => 3,
            Self::KeyReused | Self::NotReplayable => 9,
            Self::InFlight | Self::Superseded => 10,
            Self::BodyTooLarge => 8,
            Self::CorruptRecord | Self::HandlerPanicked | Self::ResponseFailed | Self::Internal => {
                13
            }
            Self::StoreUnavailable | Self::StoreFull | Self::Overloaded => 14,
        }
    }
}

/// Whether `headers` (a request's or a response's) are gRPC's.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A gRPC response's status: from its trailers, or its headers for a trailers-only response;
/// `UNKNOWN` when neither has a readable one.
pub(crate) fn status(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> i32 {
    trailers
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(UNKNOWN)
}

/// The headers of the trailers-only gRPC response that answers `problem`.
pub(crate) fn rejection(problem: &Problem) -> HeaderMap {
    let kind = problem.kind();
    let mut headers = HeaderMap::with_capacity(5);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(kind.grpc_code()));
    let message = problem.to_string();
    if let Ok(encoded) = HeaderValue::from_str(&percent_encode(&message)) {
        headers.insert("grpc-message", encoded);
    }
    let details = STANDARD_NO_PAD.encode(status_details(kind, &message));
    if let Ok(details) = HeaderValue::from_str(&details) {
        headers.insert("grpc-status-details-bin", details);
    }
    if let Some(seconds) = kind.retry_after() {
        // gRFC A6: a client with a retry policy waits this long before its next attempt.
        headers.insert(
            "grpc-retry-pushback-ms",
            HeaderValue::from(u64::from(seconds) * 1000),
        );
    }
    headers
}

/// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A `google.rpc.Status` with `message`, an `ErrorInfo` (reason: the kind's code in capitals, domain
/// `idempotent`) and, where the kind has a `Retry-After`, a `RetryInfo`; protobuf-encoded.
fn status_details(kind: ProblemKind, message: &str) -> Vec<u8> {
    let mut error_info = Vec::new();
    field_bytes(
        &mut error_info,
        1,
        kind.code().to_ascii_uppercase().as_bytes(),
    );
    field_bytes(&mut error_info, 2, DOMAIN.as_bytes());
    let mut status = Vec::new();
    field_varint(&mut status, 1, u64::from(kind.grpc_code().unsigned_abs()));
    field_bytes(&mut status, 2, message.as_bytes());
    field_bytes(
        &mut status,
        3,
        &any("type.googleapis.com/google.rpc.ErrorInfo", &error_info),
    );
    if let Some(seconds) = kind.retry_after() {
        let mut delay = Vec::new();
        field_varint(&mut delay, 1, u64::from(seconds));
        let mut retry_info = Vec::new();
        field_bytes(&mut retry_info, 1, &delay);
        field_bytes(
            &mut status,
            3,
            &any("type.googleapis.com/google.rpc.RetryInfo", &retry_info),
        );
    }
    status
}

/// A `google.protobuf.Any` of `value`.
fn any(type_url: &str, value: &[u8]) -> Vec<u8> {
    let mut any = Vec::new();
    field_bytes(&mut any, 1, type_url.as_bytes());
    field_bytes(&mut any, 2, value);
    any
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // The low seven bits, with the continuation bit: the truncation is the encoding.
        #[allow(clippy::cast_possible_truncation)]
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(value as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u64, value: u64) {
    varint(out, field << 3);
    varint(out, value);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_protobufs() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut field = Vec::new();
        field_bytes(&mut field, 2, b"hi");
        assert_eq!(field, [0x12, 2, b'h', b'i']);
    }

    #[test]
    fn a_rejection_carries_its_code_message_and_details() {
        use base64::Engine as _;
        let problem = Problem::from(crate::Error::InFlight);
        let headers = rejection(&problem);
        assert_eq!(headers["grpc-status"], "10");
        assert_eq!(headers["grpc-retry-pushback-ms"], "1000");
        assert_eq!(
            headers["grpc-message"].to_str().ok(),
            Some(percent_encode(&problem.to_string()).as_str())
        );
        let details = STANDARD_NO_PAD
            .decode(headers["grpc-status-details-bin"].as_bytes())
            .expect("base64");
        assert_eq!(
            details,
            status_details(problem.kind(), &problem.to_string())
        );
        assert_eq!(
            details[..2],
            [0x08, 10],
            "Status.code = 10 (ABORTED), field 1 varint"
        );
        assert!(
            details.ends_with(&[0x0a, 0x02, 0x08, 0x01]),
            "RetryInfo.retry_delay = Duration {{ seconds: 1 }}, last: {details:02x?}"
        );
        let text = String::from_utf8_lossy(&details);
        for part in [
            "google.rpc.ErrorInfo",
            "IN_FLIGHT",
            DOMAIN,
            "google.rpc.RetryInfo",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let reused = rejection(&Problem::from(crate::Error::FingerprintMismatch));
        assert!(
            !reused.contains_key("grpc-retry-pushback-ms"),
            "retrying cannot help"
        );
        let details = STANDARD_NO_PAD
            .decode(reused["grpc-status-details-bin"].as_bytes())
            .expect("base64");
        assert!(!String::from_utf8_lossy(&details).contains("RetryInfo"));
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
    }

    #[test]
    fn the_status_comes_from_the_trailers_then_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(status(&headers, None), UNKNOWN);
        headers.insert("grpc-status", HeaderValue::from(5));
        assert_eq!(status(&headers, None), 5);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from(OK));
        assert_eq!(status(&headers, Some(&trailers)), OK);
    }
}
