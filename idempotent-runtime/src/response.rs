//! [`CachedResponse`]: what is replayed to a retry.

use std::sync::Arc;

use bytes::Bytes;

/// A stored result: a status, ordered metadata (name → bytes pairs; repeats kept) and a body.
///
/// In HTTP mode these are the response's status, headers and body; in plain mode the status is
/// 200, there is no metadata and the body is the serialized `Ok` value.
///
/// ```
/// use idempotent_runtime::CachedResponse;
///
/// let response = CachedResponse::new(201, "created")
///     .with_header("content-type", "text/plain")
///     .with_header("link", "</a>")
///     .with_header("link", "</b>");
/// assert_eq!(response.status(), 201);
/// assert_eq!(response.body().as_ref(), b"created");
/// assert_eq!(response.headers().len(), 3);
/// assert_eq!(CachedResponse::from("ok").status(), 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedResponse {
    status: u16,
    /// Shared, so a clone (the protocol keeps one to retry a completion) allocates nothing;
    /// `None` when there are none (most plain-mode results: no allocation at all). Not a
    /// `Vec`: no capacity word, so a stored record is 8 bytes smaller (and the memory store's
    /// record fits the allocator's next smaller size class).
    headers: Option<Arc<[(String, Bytes)]>>,
    body: Bytes,
}

impl CachedResponse {
    /// A response with `status`, `body` and no metadata.
    #[must_use]
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: None,
            body: body.into(),
        }
    }

    /// Appends one metadata pair (kept in order; repeated names are kept).
    #[must_use]
    pub fn with_header(self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.with_headers(vec![(name.into(), value.into())])
    }

    /// Appends metadata pairs at once (one allocation, where [`Self::with_header`] makes one
    /// per pair).
    pub(crate) fn with_headers(self, more: Vec<(String, Bytes)>) -> Self {
        if more.is_empty() {
            return self;
        }
        let headers = match self.headers {
            None => more,
            Some(headers) => headers.iter().cloned().chain(more).collect(),
        };
        Self {
            headers: Some(headers.into()),
            ..self
        }
    }

    /// The status (HTTP status code in HTTP mode, 200 in plain mode).
    #[must_use]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The metadata pairs, in the order they were added.
    #[must_use]
    pub fn headers(&self) -> &[(String, Bytes)] {
        self.headers.as_deref().unwrap_or_default()
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body, taken out.
    #[must_use]
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The number of payload bytes this response holds: body plus metadata names and values.
    ///
    /// ```
    /// use idempotent_runtime::CachedResponse;
    ///
    /// assert_eq!(CachedResponse::new(200, "abc").with_header("x", "yz").size(), 6);
    /// ```
    #[must_use]
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers()
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }
}

impl From<Bytes> for CachedResponse {
    fn from(body: Bytes) -> Self {
        Self::new(200, body)
    }
}

impl From<Vec<u8>> for CachedResponse {
    fn from(body: Vec<u8>) -> Self {
        Self::new(200, body)
    }
}

impl From<String> for CachedResponse {
    fn from(body: String) -> Self {
        Self::new(200, body)
    }
}

impl From<&'static str> for CachedResponse {
    fn from(body: &'static str) -> Self {
        Self::new(200, body)
    }
}

impl From<&'static [u8]> for CachedResponse {
    fn from(body: &'static [u8]) -> Self {
        Self::new(200, body)
    }
}

impl<B: Into<Bytes>> From<(u16, B)> for CachedResponse {
    fn from((status, body): (u16, B)) -> Self {
        Self::new(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_impls_default_to_200() {
        let body = Bytes::from_static(b"x");
        for response in [
            CachedResponse::from(body.clone()),
            CachedResponse::from(vec![b'x']),
            CachedResponse::from(String::from("x")),
            CachedResponse::from("x"),
            CachedResponse::from(b"x".as_slice()),
        ] {
            assert_eq!((response.status(), response.body()), (200, &body));
            assert!(response.headers().is_empty());
        }
        let created = CachedResponse::from((201, "x"));
        assert_eq!(created.status(), 201);
        assert_eq!(created.into_body(), body);
    }

    #[test]
    fn headers_keep_order_and_repeats() {
        let r = CachedResponse::new(200, "")
            .with_header("b", "1")
            .with_header("a", "2")
            .with_header("b", "3");
        let names: Vec<&str> = r.headers().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a", "b"]);
        assert_eq!(r.size(), 6);
    }
}
