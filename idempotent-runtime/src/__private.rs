//! Only for the code `#[idempotent]` generates. Not a public API: no stability promise.

pub use crate::codec::{CacheErrors, Plain, ResultCodec};
pub use crate::execute::{Concurrency, Spec, execute};
pub use crate::{Error, Fingerprint, IdempotencyKey, IdempotencyStore, default_store};
pub use core::time::Duration;

use serde::Serialize;

use crate::FingerprintBuilder;

/// What `key = <expr>` may evaluate to.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as an idempotency key",
    label = "`key = …` must evaluate to a string: a `String`, `&str` or `IdempotencyKey`",
    note = "for the `Idempotency-Key` header of an axum handler, write `key = header`"
)]
pub trait IntoKey {
    /// The validated key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    fn into_key(self) -> Result<IdempotencyKey, Error>;
}

/// Anything that reads as a string: `String`, `&str`, `IdempotencyKey`, `Box<str>`, `Cow<str>`.
/// The macro passes a reference, so `key = req.key` never moves the argument.
impl<T: AsRef<str> + ?Sized> IntoKey for &T {
    fn into_key(self) -> Result<IdempotencyKey, Error> {
        Ok(IdempotencyKey::new(self.as_ref())?)
    }
}

/// A fingerprinted argument must be `Serialize`.
#[diagnostic::on_unimplemented(
    message = "argument `{Self}` cannot be fingerprinted: it does not implement `serde::Serialize`",
    label = "fingerprinted here",
    note = "derive `Serialize` for it, leave it out with `skip(…)`, or name the fields to hash with `fingerprint(…)`"
)]
pub trait Fingerprintable {}

impl<T: Serialize + ?Sized> Fingerprintable for T {}

/// Compile-time check that an argument can be fingerprinted; spanned at the argument.
pub const fn assert_fingerprintable<T: Fingerprintable + ?Sized>(_: &T) {}

/// Compile-time check that the fn's return type can be stored: naming the type needs the
/// bound, so the error points at the return type the type argument came from.
pub struct AssertResult<R, C: ResultCodec<R>>(core::marker::PhantomData<fn() -> (R, C)>);

impl<R, C: ResultCodec<R>> AssertResult<R, C> {
    /// The witness.
    #[must_use]
    #[allow(clippy::new_without_default, reason = "only generated code builds it")]
    pub const fn new() -> Self {
        Self(core::marker::PhantomData)
    }
}

/// The fingerprint of the operation and its fingerprinted arguments.
///
/// # Errors
/// [`Error::Fingerprint`] when an argument fails to serialize.
pub fn fingerprint<T: Serialize + ?Sized>(operation: &str, args: &T) -> Result<Fingerprint, Error> {
    let mut builder = FingerprintBuilder::new(operation);
    builder.value(args)?;
    Ok(builder.finish())
}

/// The store a handler uses: a clone of `store = …` (so it outlives borrowed arguments).
#[must_use]
pub fn store_handle<S: IdempotencyStore + Clone>(store: &S) -> S {
    store.clone()
}

/// Gives the handler's `async move` block the fn's return type, for inference.
pub fn typed<R, F: core::future::Future<Output = R>>(future: F) -> F {
    future
}
