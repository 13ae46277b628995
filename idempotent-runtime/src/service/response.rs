//! Capturing a handler's whole response (trailers included) for storage, and replaying it
//! byte-identical.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{LayerBody, Problem, grpc};
use crate::protocol::codec::{Disposition, ResultCodec};
use crate::{CachedResponse, Error};

/// The header a replayed response carries.
///
/// ```
/// use idempotent_runtime::service::REPLAYED_HEADER;
///
/// // A client can tell a replay from a first answer.
/// assert_eq!(REPLAYED_HEADER, "idempotent-replayed");
/// ```
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// [`REPLAYED_HEADER`] as a name made once: a name from a `&str` that is not a standard
/// header's is copied into an allocation of its own on every insert.
static REPLAYED: HeaderName = HeaderName::from_static(REPLAYED_HEADER);

/// Headers never stored: hop-by-hop headers (RFC 9110 §7.6.1), `Date` (the replay gets its
/// own) and `Set-Cookie` (a session handed to whoever holds the key would leak it).
const NOT_STORED: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "date",
    "set-cookie",
];

/// The prefix of a stored metadata name that holds a trailer, not a header: `:` is not a
/// token character, so no header name has it (RFC 9110 §5.1).
const TRAILER_PREFIX: &str = "trailer:";

/// A response whose body is in memory: what the protocol stores, replays and returns.
#[derive(Debug)]
pub(crate) struct Buffered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// Boxed, as is `problem`: both are rare, and a `Buffered` is held by value in the
    /// protocol's futures (each of its awaits keeps one), so its size is theirs.
    trailers: Option<Box<HeaderMap>>,
    /// What the protocol does with it: store it, release the key, or record that it ran.
    keep: Keep,
    /// The rejection it answers, if it is one (for a gRPC request, answered as a status).
    problem: Option<Box<Problem>>,
}

/// What becomes of a captured response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Stored and replayed.
    Store,
    /// Not stored: the key is released for a retry (a status the options do not store).
    Release,
    /// The handler ran but its response broke: completed as done, not replayable.
    Broken,
}

/// Which captured responses are stored: by HTTP status, and for a gRPC response also by its
/// `grpc-status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorePolicy {
    pub(crate) http: fn(StatusCode) -> bool,
    pub(crate) grpc: fn(i32) -> bool,
}

impl StorePolicy {
    fn keeps(self, status: StatusCode, headers: &HeaderMap, trailers: Option<&HeaderMap>) -> bool {
        (self.http)(status)
            && (!grpc::is_grpc(headers) || (self.grpc)(grpc::status(headers, trailers)))
    }
}

impl Buffered {
    /// Reads `response`'s whole body and trailers into memory; `policy` says whether it is
    /// kept.
    pub(crate) async fn capture<B>(response: http::Response<B>, policy: StorePolicy) -> Self
    where
        B: http_body::Body,
    {
        let (parts, body) = response.into_parts();
        match super::body::read_whole(body).await {
            Ok((body, trailers)) => {
                let keep = if policy.keeps(parts.status, &parts.headers, trailers.as_ref()) {
                    Keep::Store
                } else {
                    Keep::Release
                };
                Self {
                    keep,
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    trailers: trailers.map(Box::new),
                    problem: None,
                }
            }
            // The handler's body failed mid-stream after the handler ran: its side effect may
            // have happened, so the key is never released.
            Err(_) => Self {
                keep: Keep::Broken,
                ..Self::from(Problem::response_failed())
            },
        }
    }

    /// For a gRPC request: a rejection becomes the trailers-only gRPC status that answers it
    /// (a rejection has no trailers of its own).
    pub(crate) fn for_grpc(self) -> Self {
        match &self.problem {
            Some(problem) => Self {
                status: StatusCode::OK,
                headers: grpc::rejection(problem),
                body: Bytes::new(),
                ..self
            },
            None => self,
        }
    }

    /// The response to send, with any body type `B` passed through elsewhere.
    pub(crate) fn into_http<B>(self) -> http::Response<LayerBody<B>> {
        let trailers = self.trailers.map(|trailers| *trailers);
        let mut response = http::Response::new(LayerBody::buffered(self.body, trailers));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if let Some(problem) = self.problem {
            response.extensions_mut().insert(*problem);
        }
        response
    }
}

impl IntoResponse for Buffered {
    fn into_response(self) -> Response {
        if self.trailers.is_some() {
            return self.into_http::<Body>().map(Body::new);
        }
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

impl From<Problem> for Buffered {
    fn from(problem: Problem) -> Self {
        let (parts, _) = problem.clone().into_response().into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::from(problem.body()),
            trailers: None,
            keep: Keep::Release,
            problem: Some(Box::new(problem)),
        }
    }
}

/// HTTP mode: the captured response is stored and replayed if its status is one the options
/// store (by default 2xx–4xx for the attribute, 2xx–3xx for the layer; everything with
/// `cache_errors`); otherwise the claim is released so a retry runs again. A response whose
/// body broke is completed as done, not replayable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Http;

fn encode(response: &Buffered, max_body: usize) -> Disposition {
    match response.keep {
        Keep::Broken => return Disposition::NotReplayable,
        Keep::Release => return Disposition::Release,
        Keep::Store => {}
    }
    if response.body.len() > max_body {
        return Disposition::NotReplayable;
    }
    let mut headers = Vec::with_capacity(
        response.headers.len() + response.trailers.as_deref().map_or(0, http::HeaderMap::len),
    );
    for (name, value) in &response.headers {
        if !NOT_STORED.contains(&name.as_str()) {
            headers.push((
                name.as_str().to_owned(),
                Bytes::copy_from_slice(value.as_bytes()),
            ));
        }
    }
    for (name, value) in response.trailers.as_deref().into_iter().flatten() {
        if !NOT_STORED.contains(&name.as_str()) {
            let name = format!("{TRAILER_PREFIX}{name}");
            headers.push((name, Bytes::copy_from_slice(value.as_bytes())));
        }
    }
    let cached = CachedResponse::new(response.status.as_u16(), response.body.clone());
    Disposition::Complete(cached.with_headers(headers))
}

fn decode(cached: &CachedResponse) -> Result<Buffered, Error> {
    let corrupt = |what: String| Error::Corrupt(format!("stored HTTP response: {what}"));
    let status = StatusCode::from_u16(cached.status())
        .map_err(|_| corrupt(format!("invalid status {}", cached.status())))?;
    // The stored headers, the replay marker, and the `content-length` axum adds on the way out.
    let mut headers = HeaderMap::with_capacity(cached.headers().len() + 2);
    let mut trailers: Option<HeaderMap> = None;
    for (name, value) in cached.headers() {
        let (map, field) = match name.strip_prefix(TRAILER_PREFIX) {
            Some(trailer) => (trailers.get_or_insert_default(), trailer),
            None => (&mut headers, name.as_str()),
        };
        let field = HeaderName::from_bytes(field.as_bytes())
            .map_err(|_| corrupt(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_maybe_shared(value.clone())
            .map_err(|_| corrupt(format!("invalid value of header {name}")))?;
        map.append(field, value);
    }
    headers.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    Ok(Buffered {
        status,
        headers,
        body: cached.body().clone(),
        trailers: trailers.map(Box::new),
        keep: Keep::Store,
        problem: None,
    })
}

impl ResultCodec<Buffered> for Http {
    fn encode(result: &Buffered, max_body: usize) -> Disposition {
        encode(result, max_body)
    }

    fn decode(response: &CachedResponse) -> Result<Buffered, Error> {
        decode(response)
    }

    fn error(error: Error) -> Buffered {
        Buffered::from(Problem::from(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::HttpOptions;

    fn buffered(status: u16, headers: &[(&'static str, &str)], body: &str) -> Buffered {
        kept(status, headers, body, |s| !s.is_server_error())
    }

    fn kept(
        status: u16,
        headers: &[(&'static str, &str)],
        body: &str,
        stores: fn(StatusCode) -> bool,
    ) -> Buffered {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(*n, HeaderValue::from_str(v).expect("value"));
        }
        let status = StatusCode::from_u16(status).expect("status");
        Buffered {
            keep: if stores(status) {
                Keep::Store
            } else {
                Keep::Release
            },
            status,
            headers: map,
            body: Bytes::from(body.to_owned()),
            trailers: None,
            problem: None,
        }
    }

    #[test]
    fn stores_ordered_repeated_headers_but_not_hop_by_hop_date_or_cookies() {
        let response = buffered(
            201,
            &[
                ("content-type", "application/json"),
                ("x-a", "1"),
                ("set-cookie", "session=secret"),
                ("x-a", "2"),
                ("connection", "keep-alive"),
                ("date", "Mon, 23 Nov 2026 00:00:00 GMT"),
            ],
            "{}",
        );
        let Disposition::Complete(cached) =
            <Http as ResultCodec<Buffered>>::encode(&response, 1024)
        else {
            panic!("not stored");
        };
        let names: Vec<(&str, &[u8])> = cached
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref()))
            .collect();
        assert_eq!(
            names,
            [
                ("content-type", &b"application/json"[..]),
                ("x-a", b"1"),
                ("x-a", b"2")
            ]
        );
        let replayed = decode(&cached).expect("decodes");
        assert_eq!(replayed.status, StatusCode::CREATED);
        assert_eq!(replayed.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(replayed.headers[REPLAYED_HEADER], "true");
    }

    /// A replay's header map has room for the `content-length` axum adds on the way out, so
    /// it is not reallocated per replay.
    #[test]
    fn a_replayed_header_map_has_room_for_the_content_length() {
        for stored in 0..4 {
            let headers: Vec<(&'static str, &str)> =
                [("content-type", "a/b"), ("x-a", "1"), ("x-b", "2")][..stored].to_vec();
            let Disposition::Complete(cached) =
                <Http as ResultCodec<Buffered>>::encode(&buffered(201, &headers, "{}"), 1024)
            else {
                panic!("not stored");
            };
            let replayed = decode(&cached).expect("decodes");
            let map = &replayed.headers;
            assert_eq!(
                map.len(),
                stored + 1,
                "the stored headers and the replay marker"
            );
            assert!(
                map.capacity() > map.len(),
                "{stored} stored: capacity {}",
                map.capacity()
            );
        }
    }

    #[test]
    fn trailers_are_stored_apart_from_headers_and_replayed_as_trailers() {
        let mut response = buffered(200, &[("content-type", "application/grpc")], "frame");
        let mut trailers = HeaderMap::new();
        trailers.append("grpc-status", HeaderValue::from_static("0"));
        trailers.append("x-t", HeaderValue::from_static("1"));
        trailers.append("x-t", HeaderValue::from_static("2"));
        response.trailers = Some(Box::new(trailers.clone()));
        let Disposition::Complete(cached) =
            <Http as ResultCodec<Buffered>>::encode(&response, 1024)
        else {
            panic!("not stored");
        };
        let names: Vec<&str> = cached.headers().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "trailer:grpc-status",
                "trailer:x-t",
                "trailer:x-t"
            ]
        );
        let replayed = decode(&cached).expect("decodes");
        assert_eq!(replayed.trailers, Some(Box::new(trailers)));
        assert!(!replayed.headers.contains_key("grpc-status"));
        let bad = CachedResponse::new(200, "").with_header("trailer:bad name", "v");
        assert!(matches!(decode(&bad), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_rejection_to_a_grpc_request_is_a_trailers_only_status() {
        let problem = Problem::from(Error::FingerprintMismatch);
        let grpc = Buffered::from(problem.clone()).for_grpc();
        assert_eq!(grpc.status, StatusCode::OK, "gRPC answers 200");
        assert_eq!(grpc.headers["content-type"], "application/grpc");
        assert_eq!(grpc.headers["grpc-status"], "9");
        assert!(grpc.body.is_empty() && grpc.trailers.is_none());
        assert_eq!(grpc.problem, Some(Box::new(problem)));
        let answer = buffered(201, &[("x", "1")], "kept").for_grpc();
        assert_eq!(
            (answer.status, answer.body.as_ref()),
            (StatusCode::CREATED, &b"kept"[..])
        );
        assert_eq!(
            answer.headers["x"], "1",
            "an answer is not a rejection: unchanged"
        );
    }

    #[test]
    fn a_grpc_response_is_kept_by_its_grpc_status_as_well() {
        let policy = HttpOptions::new("op", "idempotency-key").stores;
        let grpc = |status: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/grpc"));
            let trailers = status.map(|s| {
                let mut t = HeaderMap::new();
                t.insert("grpc-status", HeaderValue::from_static(s));
                t
            });
            policy.keeps(StatusCode::OK, &headers, trailers.as_ref())
        };
        assert!(grpc(Some("0")), "OK is kept");
        assert!(!grpc(Some("13")), "another status frees the key");
        assert!(!grpc(None), "no status counts as UNKNOWN");
        let json = HeaderMap::new();
        assert!(
            policy.keeps(StatusCode::OK, &json, None),
            "not gRPC: by HTTP status only"
        );
        assert!(!policy.keeps(StatusCode::BAD_GATEWAY, &json, None));
        let every = HttpOptions::new("op", "idempotency-key")
            .cache_errors()
            .stores;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        assert!(
            every.keeps(StatusCode::OK, &headers, None),
            "cache_errors keeps every status"
        );
    }

    #[test]
    fn status_policy() {
        let ok = |s| {
            matches!(
                <Http as ResultCodec<Buffered>>::encode(&buffered(s, &[], ""), 10),
                Disposition::Complete(_)
            )
        };
        assert!(ok(200) && ok(302) && ok(404) && ok(422));
        assert!(matches!(
            <Http as ResultCodec<Buffered>>::encode(&buffered(503, &[], ""), 10),
            Disposition::Release
        ));
        assert!(matches!(
            <Http as ResultCodec<Buffered>>::encode(&kept(503, &[], "", |_| true), 10),
            Disposition::Complete(_)
        ));
        assert!(matches!(
            <Http as ResultCodec<Buffered>>::encode(&buffered(200, &[], "too long"), 3),
            Disposition::NotReplayable
        ));
        assert!(
            matches!(
                <Http as ResultCodec<Buffered>>::encode(&buffered(200, &[], "abc"), 3),
                Disposition::Complete(_)
            ),
            "a body of exactly `max_body` bytes is kept"
        );
    }

    #[test]
    fn corrupt_stored_responses_are_errors() {
        assert!(matches!(
            decode(&CachedResponse::new(1000, "")),
            Err(Error::Corrupt(_))
        ));
        let bad_name = CachedResponse::new(200, "").with_header("bad name", "v");
        assert!(matches!(decode(&bad_name), Err(Error::Corrupt(_))));
        let bad_value = CachedResponse::new(200, "").with_header("x", "line\nbreak");
        assert!(matches!(decode(&bad_value), Err(Error::Corrupt(_))));
    }
}
