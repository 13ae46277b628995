//! [`Fingerprint`]: a hash of what was asked, so a reused key with another request is caught.
//!
//! The default is 128-bit xxHash3 over a length-prefixed encoding of the operation name and the
//! request content. It is stable across processes, machines and releases, because other nodes
//! compare the fingerprints they store: changing the encoding is a wire-format change, and the
//! golden tests below pin it.

use std::fmt;

mod sink;
#[cfg(feature = "serde")]
mod value;

use sink::Sink;

/// Domain tag written first, so a fingerprint never equals a hash made for another purpose.
const DOMAIN: &[u8] = b"idempotent.fingerprint.v1";

/// A 128-bit hash of an operation name and its request content.
///
/// ```
/// use idempotent_runtime::{DefaultFingerprintStrategy, FingerprintStrategy};
///
/// let a = DefaultFingerprintStrategy.compute("POST /payments", br#"{"amount":100}"#);
/// let b = DefaultFingerprintStrategy.compute("POST /payments", br#"{"amount":200}"#);
/// assert_ne!(a, b);
/// assert_eq!(a.to_string().len(), 32); // lowercase hex
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    /// A fingerprint from its 16 bytes, for stores that read one back.
    ///
    /// ```
    /// use idempotent_runtime::Fingerprint;
    ///
    /// let fp = Fingerprint::from_bytes([7; 16]);
    /// assert_eq!(fp.to_bytes(), [7; 16]);
    /// ```
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes of this fingerprint (big-endian order of the 128-bit hash).
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The fingerprint as a 128-bit integer.
    ///
    /// ```
    /// use idempotent_runtime::Fingerprint;
    ///
    /// assert_eq!(Fingerprint::from_u128(42).as_u128(), 42);
    /// ```
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// A fingerprint from a 128-bit integer.
    #[must_use]
    pub const fn from_u128(value: u128) -> Self {
        Self(value.to_be_bytes())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.as_u128())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// How a request becomes a [`Fingerprint`]. Implement it to fingerprint requests your own way
/// (for example to ignore a field that changes between retries).
///
/// ```
/// use idempotent_runtime::{Fingerprint, FingerprintStrategy};
///
/// /// Fingerprints by the operation only: any content under a key is "the same request".
/// struct OperationOnly;
///
/// impl FingerprintStrategy for OperationOnly {
///     fn compute(&self, operation: &str, _content: &[u8]) -> Fingerprint {
///         Fingerprint::from_u128(operation.len() as u128)
///     }
/// }
///
/// assert_eq!(OperationOnly.compute("a", b"x"), OperationOnly.compute("a", b"y"));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a fingerprint strategy",
    label = "implement `FingerprintStrategy` for it, or use `DefaultFingerprintStrategy`"
)]
pub trait FingerprintStrategy: Send + Sync {
    /// The fingerprint of `content` asked of `operation`. Must be deterministic across
    /// processes, machines and releases.
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint;
}

impl<S: FingerprintStrategy + ?Sized> FingerprintStrategy for &S {
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
        (**self).compute(operation, content)
    }
}

impl<S: FingerprintStrategy + ?Sized> FingerprintStrategy for std::sync::Arc<S> {
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
        (**self).compute(operation, content)
    }
}

impl<S: FingerprintStrategy + ?Sized> FingerprintStrategy for Box<S> {
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
        (**self).compute(operation, content)
    }
}

/// The default strategy: 128-bit xxHash3 over the length-prefixed operation and content.
///
/// ```
/// use idempotent_runtime::{DefaultFingerprintStrategy, FingerprintStrategy};
///
/// let fp = DefaultFingerprintStrategy.compute("POST /credentials/issue", b"VerifiableCredential");
/// assert_eq!(fp, DefaultFingerprintStrategy.compute("POST /credentials/issue", b"VerifiableCredential"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultFingerprintStrategy;

impl FingerprintStrategy for DefaultFingerprintStrategy {
    fn compute(&self, operation: &str, content: &[u8]) -> Fingerprint {
        let mut builder = FingerprintBuilder::new(operation);
        builder.bytes(content);
        builder.finish()
    }
}

impl DefaultFingerprintStrategy {
    /// The fingerprint of any serializable value, streamed through serde's data model straight
    /// into the hasher (nothing is serialized to a buffer first).
    ///
    /// Every field is length-prefixed, so `("ab", "c")` and `("a", "bc")` differ; map entries
    /// and struct fields are combined order-independently, so two `HashMap`s with equal content
    /// agree, and a struct agrees with a map of the same fields. Sequences keep their order, so
    /// a `HashSet` (which serializes as a sequence in iteration order) is not stable: use a
    /// `BTreeSet`.
    ///
    /// # Errors
    /// [`FingerprintError`] when `value`'s `Serialize` impl reports an error.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use idempotent_runtime::DefaultFingerprintStrategy;
    ///
    /// let a: HashMap<&str, u32> = [("x", 1), ("y", 2)].into();
    /// let b: HashMap<&str, u32> = [("y", 2), ("x", 1)].into();
    /// assert_eq!(
    ///     DefaultFingerprintStrategy.compute_value("op", &a)?,
    ///     DefaultFingerprintStrategy.compute_value("op", &b)?,
    /// );
    /// # Ok::<(), idempotent_runtime::FingerprintError>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn compute_value<T: serde::Serialize + ?Sized>(
        self,
        operation: &str,
        value: &T,
    ) -> Result<Fingerprint, FingerprintError> {
        let mut builder = FingerprintBuilder::new(operation);
        builder.value(value)?;
        Ok(builder.finish())
    }
}

/// Builds a [`Fingerprint`] from an operation name and parts, each length-prefixed.
///
/// ```
/// use idempotent_runtime::FingerprintBuilder;
///
/// let mut a = FingerprintBuilder::new("POST /orders/{id}");
/// a.bytes(b"ab").bytes(b"c");
/// let mut b = FingerprintBuilder::new("POST /orders/{id}");
/// b.bytes(b"a").bytes(b"bc");
/// assert_ne!(a.finish(), b.finish());
/// ```
#[derive(Clone)]
pub struct FingerprintBuilder {
    sink: Sink,
}

impl FingerprintBuilder {
    /// Starts a fingerprint of `operation`.
    #[must_use]
    pub fn new(operation: &str) -> Self {
        let mut builder = Self { sink: Sink::new() };
        builder.len_prefixed(DOMAIN);
        builder.len_prefixed(operation.as_bytes());
        builder
    }

    /// Adds one part of raw bytes.
    pub fn bytes(&mut self, part: &[u8]) -> &mut Self {
        self.sink.update(&[0x00]);
        self.len_prefixed(part);
        self
    }

    /// Adds one serializable value; see [`DefaultFingerprintStrategy::compute_value`].
    ///
    /// # Errors
    /// [`FingerprintError`] when `value`'s `Serialize` impl reports an error.
    #[cfg(feature = "serde")]
    pub fn value<T: serde::Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<&mut Self, FingerprintError> {
        self.sink.update(&[0x01]);
        value.serialize(value::ValueSerializer::new(&mut self.sink))?;
        Ok(self)
    }

    /// The fingerprint of everything added so far.
    #[must_use]
    pub fn finish(&self) -> Fingerprint {
        Fingerprint::from_u128(self.sink.digest128())
    }

    fn len_prefixed(&mut self, bytes: &[u8]) {
        self.sink.update(&(bytes.len() as u64).to_le_bytes());
        self.sink.update(bytes);
    }
}

impl fmt::Debug for FingerprintBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintBuilder").finish_non_exhaustive()
    }
}

/// A value could not be fingerprinted: its `Serialize` impl reported an error.
///
/// ```
/// use idempotent_runtime::{DefaultFingerprintStrategy, FingerprintStrategy};
///
/// struct Broken;
/// impl serde::Serialize for Broken {
///     fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
///         Err(serde::ser::Error::custom("cannot serialize"))
///     }
/// }
/// let error = DefaultFingerprintStrategy.compute_value("op", &Broken).expect_err("refused");
/// assert!(error.to_string().contains("cannot serialize"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot fingerprint the request: {0}")]
pub struct FingerprintError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: if one of these changes, stored fingerprints no longer match after an
    /// upgrade. Change them only with a new `DOMAIN` version and a release note.
    #[test]
    fn golden_bytes_fingerprints() {
        let cases: [(&str, &[u8], &str); 3] = [
            ("", b"", GOLDEN_EMPTY),
            (
                "POST /credentials/issue",
                b"VerifiableCredential",
                GOLDEN_CREDENTIAL,
            ),
            ("op", &[0, 1, 2, 255], GOLDEN_BINARY),
        ];
        for (operation, content, expected) in cases {
            assert_eq!(
                DefaultFingerprintStrategy
                    .compute(operation, content)
                    .to_string(),
                expected,
                "{operation:?}"
            );
        }
    }

    /// Parts around and beyond the builder's buffer: a long operation name, a part longer
    /// than the buffer after a short one, a part that ends exactly at the buffer's edge.
    /// Pinned with the encoder that wrote every part straight into a streaming hasher.
    #[test]
    fn golden_fingerprints_of_parts_larger_than_the_buffer() {
        let long = "o".repeat(300);
        let mut a = FingerprintBuilder::new(&long);
        a.bytes(b"x");
        let mut b = FingerprintBuilder::new("op");
        b.bytes(b"short").bytes(&[7; 1000]).bytes(b"after");
        let mut c = FingerprintBuilder::new("op");
        // 8 + 25 (domain) + 8 + 2 (op) + 1 + 8 + 204 = 256 bytes: the buffer exactly full.
        c.bytes(&[1; 204]).bytes(b"");
        let got = [a.finish(), b.finish(), c.finish()].map(|f| f.to_string());
        assert_eq!(
            got,
            [
                "2545f0e5080af8cff0983950c416cee1",
                "b739faf488c6e2a78aef3f5a678356f4",
                "3ed61c51bc69a417fefdda89c2b56733",
            ]
        );
    }

    const GOLDEN_EMPTY: &str = "175b34450e153d7b20a3d03b54b17708";
    const GOLDEN_CREDENTIAL: &str = "4dfa2fc661f3300c71d773d544784ede";
    const GOLDEN_BINARY: &str = "4d02466d24a9226aeb76ec56320c48a0";

    #[test]
    fn parts_are_length_prefixed() {
        let fp = |parts: &[&[u8]]| {
            let mut b = FingerprintBuilder::new("op");
            for part in parts {
                b.bytes(part);
            }
            b.finish()
        };
        assert_ne!(fp(&[b"ab", b"c"]), fp(&[b"a", b"bc"]));
        assert_ne!(fp(&[b"abc"]), fp(&[b"ab", b"c"]));
        assert_ne!(fp(&[b""]), fp(&[]));
        assert_eq!(fp(&[b"ab", b"c"]), fp(&[b"ab", b"c"]));
    }

    #[test]
    fn operation_is_part_of_the_fingerprint() {
        let s = DefaultFingerprintStrategy;
        assert_ne!(s.compute("a", b"bc"), s.compute("ab", b"c"));
        assert_ne!(
            s.compute("users.create", b"x"),
            s.compute("users.delete", b"x")
        );
    }

    #[test]
    fn bytes_and_integer_forms_round_trip() {
        let fp = DefaultFingerprintStrategy.compute("op", b"x");
        assert_eq!(Fingerprint::from_bytes(fp.to_bytes()), fp);
        assert_eq!(Fingerprint::from_u128(fp.as_u128()), fp);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint({fp})"));
        assert_eq!(
            Fingerprint::from_u128(0xab).to_string(),
            format!("{:032x}", 0xab)
        );
    }
}
