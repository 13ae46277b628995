//! [`RequestHead`]: what the fingerprint and the key need from a request besides its content.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, MatchedPath};
use http::request::Parts;
use http::{HeaderMap, Method};

use super::key::{HeaderKey, header_key};
use super::{HttpOptions, IDEMPOTENCY_KEY_HEADER, Problem};
use crate::{Error, Fingerprint, FingerprintBuilder};

/// What the fingerprint needs from a request besides its content, and its key. Extracted by
/// the code `#[idempotent(key = header)]` generates, as the first argument; the key is read
/// from the `Idempotency-Key` header there and then (only [`HeadWithHeaders`], for a handler
/// keyed by another header, keeps the request's headers).
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Method,
    route: Route,
    query: String,
    key: KeySource,
}

/// The route template, or the path when no route matched.
#[derive(Debug, Clone)]
enum Route {
    Matched(MatchedPath),
    Path(String),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Self::Matched(matched) => matched.as_str(),
            Self::Path(path) => path,
        }
    }
}

/// Where [`RequestHead::take_key`] finds the key.
#[derive(Debug, Clone)]
enum KeySource {
    /// Read from the header `header` when the head was taken.
    Read {
        header: &'static str,
        key: Result<Option<HeaderKey>, Problem>,
    },
    /// Read by the caller, for its own options (the layer).
    Given(Result<Option<HeaderKey>, Problem>),
    /// The request's headers, for a header named at run time.
    Headers(HeaderMap),
}

impl RequestHead {
    /// The head of the request `parts`, its key read from the `header` header.
    pub(crate) fn read(parts: &Parts, header: &'static str) -> Self {
        let key = header_key(&parts.headers, header);
        Self::of(parts, KeySource::Read { header, key })
    }

    /// The head of the request `parts` with the key its caller read (`header_key`).
    pub(crate) fn with_key(parts: &Parts, key: Result<Option<HeaderKey>, Problem>) -> Self {
        Self::of(parts, KeySource::Given(key))
    }

    fn of(parts: &Parts, key: KeySource) -> Self {
        let route = parts.extensions.get::<MatchedPath>().map_or_else(
            || Route::Path(parts.uri.path().to_owned()),
            |matched| Route::Matched(matched.clone()),
        );
        Self {
            method: parts.method.clone(),
            route,
            query: parts.uri.query().unwrap_or_default().to_owned(),
            key,
        }
    }

    /// The fingerprint of this request for `operation`: method, route template and query, then
    /// what `content` adds (arguments or body), each part length-prefixed.
    pub(crate) fn fingerprint(
        &self,
        operation: &str,
        content: impl FnOnce(&mut FingerprintBuilder) -> Result<(), Error>,
    ) -> Result<Fingerprint, Error> {
        let mut builder = FingerprintBuilder::new(operation);
        builder
            .bytes(self.method.as_str().as_bytes())
            .bytes(self.route.as_str().as_bytes())
            .bytes(self.query.as_bytes());
        content(&mut builder)?;
        Ok(builder.finish())
    }

    /// The key for `options`, taken out of the head (a second call finds none): `Ok(None)`
    /// when it is optional and was not sent.
    pub(crate) fn take_key(&mut self, options: &HttpOptions) -> Result<Option<HeaderKey>, Problem> {
        let key = match &mut self.key {
            KeySource::Read { header, key } if options.header == *header => {
                std::mem::replace(key, Ok(None))
            }
            KeySource::Given(key) => std::mem::replace(key, Ok(None)),
            // Generated code takes the head for the header its options name, so this is
            // unreachable; were it reached, nothing runs (a server error, not the client's).
            KeySource::Read { header, .. } => {
                return Err(Problem::new(
                    super::ProblemKind::Internal,
                    format!(
                        "the key was read from the `{header}` header, but `{}` is configured",
                        options.header
                    ),
                ));
            }
            KeySource::Headers(headers) => header_key(headers, &options.header),
        };
        match key? {
            Some(key) => Ok(Some(key)),
            None if options.optional => Ok(None),
            None => Err(Problem::missing_key(&options.header)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHead {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::read(parts, IDEMPOTENCY_KEY_HEADER))
    }
}

/// A [`RequestHead`] that keeps the request's headers, for a handler keyed by a header other
/// than `Idempotency-Key` (`key = header("…")`): the extractor does not know the name, the
/// handler's options do.
#[derive(Debug, Clone)]
pub struct HeadWithHeaders(RequestHead);

impl From<HeadWithHeaders> for RequestHead {
    fn from(head: HeadWithHeaders) -> Self {
        head.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for HeadWithHeaders {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(RequestHead::of(
            parts,
            KeySource::Headers(parts.headers.clone()),
        )))
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::{HttpOptions, RequestHead};
    use crate::service::ProblemKind;

    fn parts(key: Option<&str>) -> http::request::Parts {
        let mut request = Request::post("/orders?x=1");
        if let Some(key) = key {
            request = request
                .header("idempotency-key", key)
                .header("x-key", "other");
        }
        request.body(()).expect("request").into_parts().0
    }

    #[test]
    fn the_key_is_read_once_from_the_header_the_head_was_taken_for() {
        let options = HttpOptions::new("op", "idempotency-key");
        let mut head = RequestHead::read(&parts(Some("k-1")), "idempotency-key");
        let key = head.take_key(&options).expect("valid").expect("present");
        let k1 = crate::IdempotencyKey::new("k-1").expect("key");
        assert_eq!(
            key.stored_key(&options, Some("tenant")).ok(),
            Some(crate::storage_key("op", Some("tenant"), &k1)),
            "the stored key of the header's key"
        );
        let again = head.take_key(&options).map_err(|p| p.kind());
        assert_eq!(again.err(), Some(ProblemKind::MissingKey));
    }

    #[test]
    fn a_head_taken_for_another_header_runs_nothing() {
        let options = HttpOptions::new("op", "x-key");
        let mut head = RequestHead::read(&parts(Some("k-1")), "idempotency-key");
        let problem = head.take_key(&options).expect_err("refused");
        assert_eq!(problem.kind(), ProblemKind::Internal);
        assert!(problem.detail().contains("`x-key`"), "{}", problem.detail());
    }
}
