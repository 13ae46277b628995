//! [`IdempotencyKey`]: the client's name for one logical request.

use std::fmt;
use std::str::FromStr;

/// The longest key accepted, in bytes.
///
/// ```
/// use idempotent_runtime::{IdempotencyKey, MAX_KEY_LEN};
///
/// assert!(IdempotencyKey::new(&"k".repeat(MAX_KEY_LEN)).is_ok());
/// assert!(IdempotencyKey::new(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
/// ```
pub const MAX_KEY_LEN: usize = 255;

/// A validated idempotency key: 1..=255 bytes of visible ASCII (`0x21..=0x7E`).
///
/// A key is never truncated or normalised: a key that does not meet the rules is refused with a
/// [`KeyError`] that says why.
///
/// ```
/// use idempotent_runtime::IdempotencyKey;
///
/// let key: IdempotencyKey = "order-7f3a".parse()?;
/// assert_eq!(key.as_str(), "order-7f3a");
/// assert!("has space".parse::<IdempotencyKey>().is_err());
/// # Ok::<(), idempotent_runtime::KeyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(Box<str>);

/// Why a string is not a valid [`IdempotencyKey`].
///
/// ```
/// use idempotent_runtime::{IdempotencyKey, KeyError};
///
/// assert_eq!(IdempotencyKey::new("a b"), Err(KeyError::InvalidByte { byte: b' ', position: 1 }));
/// assert_eq!(IdempotencyKey::new(""), Err(KeyError::Empty));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    #[error("idempotency key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("idempotency key is {len} bytes long; at most 255 are allowed")]
    TooLong {
        /// The length of the refused key, in bytes.
        len: usize,
    },
    /// The key holds a byte outside visible ASCII (`0x21..=0x7E`): a space, a control
    /// character or a non-ASCII byte.
    #[error(
        "idempotency key has byte 0x{byte:02x} at position {position}; only visible ASCII \
         (0x21..=0x7E) is allowed"
    )]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its position in the key, counted in bytes from 0.
        position: usize,
    },
}

impl IdempotencyKey {
    /// Validates `key`.
    ///
    /// # Errors
    /// [`KeyError`] when `key` is empty, longer than 255 bytes, or holds a byte outside
    /// `0x21..=0x7E`.
    ///
    /// ```
    /// use idempotent_runtime::{IdempotencyKey, KeyError};
    ///
    /// assert_eq!(IdempotencyKey::new(""), Err(KeyError::Empty));
    /// assert!(IdempotencyKey::new("a7c1e9d2-0d4b-4f7a-9b1e-5c3f2a8d6e10").is_ok());
    /// ```
    pub fn new(key: &str) -> Result<Self, KeyError> {
        Self::validate(key.as_bytes())?;
        Ok(Self(key.into()))
    }

    /// Validates raw bytes, as they arrive in a header.
    ///
    /// # Errors
    /// The same as [`IdempotencyKey::new`].
    ///
    /// ```
    /// use idempotent_runtime::IdempotencyKey;
    ///
    /// assert!(IdempotencyKey::from_bytes(b"abc").is_ok());
    /// assert!(IdempotencyKey::from_bytes("caf\u{e9}".as_bytes()).is_err());
    /// ```
    pub fn from_bytes(key: &[u8]) -> Result<Self, KeyError> {
        Ok(Self(Self::checked_str(key)?.into()))
    }

    /// `key` as text, once it passes the rules of [`Self::new`]; not copied.
    pub(crate) fn checked_str(key: &[u8]) -> Result<&str, KeyError> {
        Self::validate(key)?;
        // Every byte is visible ASCII, so this is valid UTF-8.
        std::str::from_utf8(key).map_err(|e| KeyError::InvalidByte {
            byte: key.get(e.valid_up_to()).copied().unwrap_or_default(),
            position: e.valid_up_to(),
        })
    }

    pub(crate) fn validate(key: &[u8]) -> Result<(), KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong { len: key.len() });
        }
        // Every byte at once first (no early exit, so the compiler checks 32 per instruction);
        // where the bad byte is, only when there is one.
        let invisible = |b: &u8| !(0x21..=0x7e).contains(b);
        if !key.iter().fold(false, |bad, b| bad | invisible(b)) {
            return Ok(());
        }
        match key.iter().position(invisible) {
            Some(position) => Err(KeyError::InvalidByte {
                byte: key[position],
                position,
            }),
            None => Ok(()),
        }
    }

    /// The key as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random key (a UUID v4 in its hyphenated form), for clients that make their own.
    ///
    /// ```
    /// use idempotent_runtime::IdempotencyKey;
    ///
    /// assert_eq!(IdempotencyKey::random().as_str().len(), 36);
    /// assert_ne!(IdempotencyKey::random(), IdempotencyKey::random());
    /// ```
    #[cfg(feature = "uuid")]
    #[must_use]
    pub fn random() -> Self {
        let mut buf = uuid::Uuid::encode_buffer();
        Self(
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut buf)
                .into(),
        )
    }
}

/// The key a record is stored under, from [`storage_key`](crate::storage_key): 64 hex digits of
/// a SHA-256 over the operation, the scope and the client's key. Its own type, so it is never
/// confused with a client's key; it derefs to [`IdempotencyKey`], which is what stores take.
///
/// ```
/// use idempotent_runtime::{storage_key, IdempotencyKey};
///
/// let stored = storage_key("orders.pay", None, &IdempotencyKey::new("k")?);
/// assert_eq!(stored.as_str().len(), 64);
/// assert!(stored.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
/// # Ok::<(), idempotent_runtime::KeyError>(())
/// ```
#[cfg(feature = "macros")]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoredKey(IdempotencyKey);

#[cfg(feature = "macros")]
impl StoredKey {
    /// The key of a 32-byte digest: its lowercase hex. Hex digits are visible ASCII and 64 of
    /// them fit the length bound, so this cannot fail (no validation to fall back from).
    pub(crate) fn from_digest(digest: &[u8; 32]) -> Self {
        let mut hex = String::with_capacity(64);
        crate::hex::push_hex(&mut hex, digest);
        Self(IdempotencyKey(hex.into_boxed_str()))
    }

    /// The key as stores take it.
    #[must_use]
    pub fn as_key(&self) -> &IdempotencyKey {
        &self.0
    }

    /// The 64 hex digits.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(feature = "macros")]
impl std::ops::Deref for StoredKey {
    type Target = IdempotencyKey;

    fn deref(&self) -> &IdempotencyKey {
        &self.0
    }
}

#[cfg(feature = "macros")]
impl fmt::Display for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "macros")]
impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredKey({})", self.as_str())
    }
}

/// A random UUID v4 key; see [`IdempotencyKey::random`].
#[cfg(feature = "uuid")]
impl Default for IdempotencyKey {
    fn default() -> Self {
        Self::random()
    }
}

impl FromStr for IdempotencyKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for IdempotencyKey {
    type Error = KeyError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = KeyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::validate(s.as_bytes())?;
        Ok(Self(s.into_boxed_str()))
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&&*self.0).finish()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for IdempotencyKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_255_bytes() {
        let all: String = (0x21u8..=0x7e).map(char::from).collect();
        assert_eq!(IdempotencyKey::new(&all).map(|k| k.to_string()), Ok(all));
        let longest = "k".repeat(255);
        assert_eq!(
            IdempotencyKey::new(&longest).map(|k| k.as_str().len()),
            Ok(255)
        );
        assert_eq!(
            IdempotencyKey::new("x").map(|k| k.as_ref().to_owned()),
            Ok("x".into())
        );
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(IdempotencyKey::new(""), Err(KeyError::Empty));
        assert_eq!(IdempotencyKey::from_bytes(b""), Err(KeyError::Empty));
    }

    #[test]
    fn refuses_256_bytes_without_truncating() {
        let key = "k".repeat(256);
        assert_eq!(
            IdempotencyKey::new(&key),
            Err(KeyError::TooLong { len: 256 })
        );
        assert_eq!(
            KeyError::TooLong { len: 256 }.to_string(),
            "idempotency key is 256 bytes long; at most 255 are allowed"
        );
    }

    #[test]
    fn refuses_control_characters_spaces_and_non_ascii() {
        let cases: [(&str, u8, usize); 6] = [
            ("a\nb", b'\n', 1),
            ("\tab", b'\t', 0),
            ("ab\u{7f}", 0x7f, 2),
            ("a b", b' ', 1),
            ("caf\u{e9}", 0xc3, 3),
            ("\u{0}", 0, 0),
        ];
        for (key, byte, position) in cases {
            assert_eq!(
                IdempotencyKey::new(key),
                Err(KeyError::InvalidByte { byte, position }),
                "{key:?}"
            );
        }
        assert_eq!(
            KeyError::InvalidByte {
                byte: b' ',
                position: 1
            }
            .to_string(),
            "idempotency key has byte 0x20 at position 1; only visible ASCII (0x21..=0x7E) is allowed"
        );
    }

    #[test]
    fn from_bytes_refuses_invalid_utf8() {
        assert_eq!(
            IdempotencyKey::from_bytes(&[b'a', 0xff]),
            Err(KeyError::InvalidByte {
                byte: 0xff,
                position: 1
            })
        );
    }

    #[test]
    fn conversions_agree() {
        let parsed: IdempotencyKey = "abc".parse().expect("valid");
        assert_eq!(IdempotencyKey::try_from("abc"), Ok(parsed.clone()));
        assert_eq!(
            IdempotencyKey::try_from(String::from("abc")),
            Ok(parsed.clone())
        );
        assert_eq!(IdempotencyKey::try_from(String::from("a c")).ok(), None);
        assert_eq!(format!("{parsed:?}"), "IdempotencyKey(\"abc\")");
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn default_is_a_random_uuid_v4() {
        let key = IdempotencyKey::default();
        let text = key.as_str();
        assert_eq!(text.len(), 36);
        assert_eq!(text.as_bytes()[14], b'4', "version nibble of {text}");
        assert_ne!(IdempotencyKey::default(), key);
    }
}
