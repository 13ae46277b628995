//! [`RequestHead`]: what the fingerprint and the key need from a request besides its content.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, MatchedPath};
use http::request::Parts;
use http::{HeaderMap, Method};

use super::{HttpOptions, Problem, key_from_headers};
use crate::{Error, Fingerprint, FingerprintBuilder, IdempotencyKey};

/// What the fingerprint needs from a request besides its content, and its headers for the key.
/// Extracted by the code `#[idempotent(key = header)]` generates, as the first argument.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Method,
    route: String,
    query: String,
    headers: HeaderMap,
}

impl RequestHead {
    pub(crate) fn from_parts(parts: &Parts) -> Self {
        let route = parts.extensions.get::<MatchedPath>().map_or_else(
            || parts.uri.path().to_owned(),
            |matched| matched.as_str().to_owned(),
        );
        Self {
            method: parts.method.clone(),
            route,
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts.headers.clone(),
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
            .bytes(self.route.as_bytes())
            .bytes(self.query.as_bytes());
        content(&mut builder)?;
        Ok(builder.finish())
    }

    pub(crate) fn key(&self, options: &HttpOptions) -> Result<Option<IdempotencyKey>, Problem> {
        match key_from_headers(&self.headers, &options.header)? {
            Some(key) => Ok(Some(key)),
            None if options.optional => Ok(None),
            None => Err(Problem::missing_key(&options.header)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestHead {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::from_parts(parts))
    }
}
