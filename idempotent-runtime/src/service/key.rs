//! Reading the idempotency key from request headers, and the [`IdempotencyKey`] extractor.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::HeaderMap;
use http::request::Parts;

use super::{HttpOptions, Problem};
use crate::{Error, IdempotencyKey, KeyError, StoredKey};

/// The header a key is read from unless configured otherwise.
///
/// ```
/// use axum::http::HeaderMap;
/// use idempotent_runtime::service::{key_from_headers, IDEMPOTENCY_KEY_HEADER};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(IDEMPOTENCY_KEY_HEADER, "k-1".parse().expect("value"));
/// let key = key_from_headers(&headers, IDEMPOTENCY_KEY_HEADER).ok().flatten();
/// assert_eq!(key.map(|k| k.to_string()).as_deref(), Some("k-1"));
/// ```
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Reads the key from the `name` header: the bare form (`Idempotency-Key: abc`, as Stripe
/// sends it) or the quoted sf-string form of the IETF draft (`Idempotency-Key: "abc"`, with
/// `\"` and `\\` escapes). `Ok(None)` when the header is absent.
///
/// # Errors
/// A 400 [`Problem`] when the header appears more than once, is empty, is not visible ASCII,
/// is longer than 255 bytes, or is a malformed sf-string.
///
/// ```
/// use http::HeaderMap;
/// use idempotent_runtime::service::key_from_headers;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("idempotency-key", "\"8e03978e-40d5\"".parse()?);
/// let key = key_from_headers(&headers, "idempotency-key").expect("valid").expect("present");
/// assert_eq!(key.as_str(), "8e03978e-40d5");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn key_from_headers(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(key) = header_key(headers, name)? else {
        return Ok(None);
    };
    IdempotencyKey::from_bytes(key.bytes())
        .map(Some)
        .map_err(|e| invalid(name, &e))
}

/// A client's key as its header carried it, checked by the rules of [`IdempotencyKey::new`]:
/// its bytes, or the content of a quoted sf-string. The protocol needs only its hash
/// ([`Self::stored_key`]).
///
/// Copied, never the header's own value: hyper's header values are views of the buffer the
/// request was read into, which the body shares, and while one lives the body cannot become
/// a `Vec` (a `String` or `Json` extractor) without being copied out — an allocation and a
/// copy of the whole body per request, where the key's copy is at most a few bytes in place.
#[derive(Debug, Clone)]
pub(crate) enum HeaderKey {
    /// A key of up to [`INLINE`] bytes (a UUID's 36 and more), in place.
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A longer key, or the content of a quoted one.
    Owned(Vec<u8>),
}

/// The longest key [`HeaderKey`] keeps in place.
const INLINE: usize = 64;

impl HeaderKey {
    /// The key `bytes`, copied: in place when they fit.
    fn copied(bytes: &[u8]) -> Self {
        let mut inline = [0; INLINE];
        match (inline.get_mut(..bytes.len()), u8::try_from(bytes.len())) {
            (Some(at), Ok(len)) => {
                at.copy_from_slice(bytes);
                Self::Inline { len, bytes: inline }
            }
            _ => Self::Owned(bytes.to_vec()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(bytes),
            Self::Owned(content) => content,
        }
    }

    /// The key's stored key for the operation of `options` and `scope`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] — never, as the key was checked when read; the check is made again
    /// rather than assumed.
    pub(crate) fn stored_key(
        &self,
        options: &HttpOptions,
        scope: Option<&str>,
    ) -> Result<StoredKey, Error> {
        options.stored_key(scope, self.bytes())
    }
}

/// The 400 for a header `name` whose key breaks the rules.
fn invalid(name: &str, error: &KeyError) -> Problem {
    Problem::invalid_key(format!("the `{name}` header is not a valid key: {error}"))
}

/// [`key_from_headers`] without the copy: the checked key as the header holds it.
pub(crate) fn header_key(headers: &HeaderMap, name: &str) -> Result<Option<HeaderKey>, Problem> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::invalid_key(format!(
            "the `{name}` header appears more than once; send exactly one"
        )));
    }
    let key = match value.as_bytes() {
        bytes @ [b'"', ..] => HeaderKey::Owned(unquote(bytes).ok_or_else(|| {
            Problem::invalid_key(format!(
                "the `{name}` header starts with `\"` but is not a valid quoted string (RFC 8941 sf-string)"
            ))
        })?),
        bytes => HeaderKey::copied(bytes),
    };
    IdempotencyKey::validate(key.bytes()).map_err(|e| invalid(name, &e))?;
    Ok(Some(key))
}

/// The content of an sf-string: `"` … `"` with `\"` and `\\` escapes, printable ASCII inside.
fn unquote(bytes: &[u8]) -> Option<Vec<u8>> {
    let inner = bytes.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.iter();
    while let Some(&c) = chars.next() {
        match c {
            b'\\' => match chars.next() {
                Some(&e @ (b'"' | b'\\')) => out.push(e),
                _ => return None,
            },
            b'"' => return None,
            0x20..=0x7e => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

/// Extracts the key from the `Idempotency-Key` header; a missing or invalid key is a 400
/// [`Problem`]. Use `Option<IdempotencyKey>` to accept requests without one.
///
/// ```
/// use axum::{Router, routing::post};
/// use idempotent_runtime::IdempotencyKey;
///
/// async fn create(key: IdempotencyKey) -> String {
///     format!("key {key}") // run the protocol by hand with `Idempotent`
/// }
///
/// let app: Router = Router::new().route("/orders", post(create));
/// ```
impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        key_from_headers(&parts.headers, IDEMPOTENCY_KEY_HEADER)?
            .ok_or_else(|| Problem::missing_key(IDEMPOTENCY_KEY_HEADER))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        key_from_headers(&parts.headers, IDEMPOTENCY_KEY_HEADER)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    /// A key read from a header keeps no view of the buffer the header came from (hyper's
    /// header values and the request body share one): while it did, the body a `String`
    /// extractor took after it was copied out of that buffer on every request. Short keys
    /// are kept in place, long and quoted ones in a copy of their own.
    #[test]
    fn a_read_key_keeps_no_view_of_the_request_buffer() {
        for key in [
            "k-1".to_owned(),
            "k".repeat(64),
            "k".repeat(200),
            "\"k-1\"".to_owned(),
        ] {
            let buffer = bytes::Bytes::from(format!("{key} and the body").into_bytes());
            let mut headers = HeaderMap::new();
            let value = HeaderValue::from_maybe_shared(buffer.slice(..key.len())).expect("value");
            headers.insert("idempotency-key", value);
            let read = header_key(&headers, "idempotency-key")
                .expect("valid")
                .expect("present");
            drop(headers);
            assert!(
                buffer.is_unique(),
                "a {}-byte key holds the buffer",
                key.len()
            );
            assert_eq!(read.bytes(), key.trim_matches('"').as_bytes());
        }
    }

    fn parse(values: &[&[u8]]) -> Result<Option<String>, Problem> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                "idempotency-key",
                HeaderValue::from_bytes(v).expect("header value"),
            );
        }
        key_from_headers(&headers, "idempotency-key").map(|k| k.map(|k| k.as_str().to_owned()))
    }

    #[test]
    fn bare_and_quoted_forms() {
        assert_eq!(parse(&[b"abc-123"]), Ok(Some("abc-123".to_owned())));
        assert_eq!(parse(&[b"\"abc-123\""]), Ok(Some("abc-123".to_owned())));
        assert_eq!(parse(&[br#""a\"b\\c""#]), Ok(Some(r#"a"b\c"#.to_owned())));
        assert_eq!(parse(&[]), Ok(None), "no header is no key, not an error");
    }

    #[test]
    fn malformed_keys_are_400() {
        for bad in [
            &b""[..],
            b"\"\"",
            b"has space",
            b"tab\there",
            b"\"unterminated",
            b"\"bad\\escape\"",
            b"\"in\"side\"",
            "caf\u{e9}".as_bytes(),
            &[b'k'; 256],
        ] {
            let problem = parse(&[bad]).expect_err("refused");
            assert_eq!(problem.status(), http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let twice = parse(&[b"a", b"b"]).expect_err("two headers");
        assert!(
            twice.detail().contains("more than once"),
            "{}",
            twice.detail()
        );
    }
}
