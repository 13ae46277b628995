//! Capturing a handler's whole response for storage, and replaying it byte-identical.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Problem;
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

/// A response whose body is in memory: what the protocol stores, replays and returns.
#[derive(Debug)]
pub(crate) struct Buffered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// What the protocol does with it: store it, release the key, or record that it ran.
    keep: Keep,
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

impl Buffered {
    /// Reads `response`'s whole body into memory; `stores` says which statuses are kept.
    pub(crate) async fn capture(response: Response, stores: fn(StatusCode) -> bool) -> Self {
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => Self {
                keep: if stores(parts.status) {
                    Keep::Store
                } else {
                    Keep::Release
                },
                status: parts.status,
                headers: parts.headers,
                body,
            },
            // The handler's body failed mid-stream after the handler ran: its side effect may
            // have happened, so the key is never released.
            Err(_) => Self {
                keep: Keep::Broken,
                ..Self::from(Problem::response_failed())
            },
        }
    }

    /// The response to send.
    pub(crate) fn into_response(self) -> Response {
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
            keep: Keep::Release,
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
    let mut cached = CachedResponse::new(response.status.as_u16(), response.body.clone());
    for (name, value) in &response.headers {
        if !NOT_STORED.contains(&name.as_str()) {
            cached = cached.with_header(name.as_str(), Bytes::copy_from_slice(value.as_bytes()));
        }
    }
    Disposition::Complete(cached)
}

fn decode(cached: &CachedResponse) -> Result<Buffered, Error> {
    let corrupt = |what: String| Error::Corrupt(format!("stored HTTP response: {what}"));
    let status = StatusCode::from_u16(cached.status())
        .map_err(|_| corrupt(format!("invalid status {}", cached.status())))?;
    let mut headers = HeaderMap::with_capacity(cached.headers().len() + 1);
    for (name, value) in cached.headers() {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| corrupt(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_maybe_shared(value.clone())
            .map_err(|_| corrupt(format!("invalid value of header {name}")))?;
        headers.append(name, value);
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(Buffered {
        status,
        headers,
        body: cached.body().clone(),
        keep: Keep::Store,
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
