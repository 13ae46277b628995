//! [`HttpOptions`]: what an HTTP execution is told — the protocol's options, the operation, the
//! key header, and which responses are stored. Only generated code and the layer build them.

use std::borrow::Cow;

use http::StatusCode;

use super::response::StorePolicy;
use crate::protocol::{KeyPrefix, Spec};
use crate::{Error, IdempotencyKey, StoredKey};

/// The options of an HTTP execution: the protocol's [`Spec`], the operation, the key header and
/// whether a request without a key may run unprotected. `const`, so the macro emits a `static`.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub(super) spec: Spec,
    operation: Cow<'static, str>,
    pub(super) header: Cow<'static, str>,
    pub(super) optional: bool,
    pub(super) stores: StorePolicy,
    /// What every stored key of the operation hashes first, hashed once.
    prefix: KeyPrefix,
}

/// What an attribute handler stores by default: everything but a 5xx.
fn not_server_error(status: StatusCode) -> bool {
    !status.is_server_error()
}

/// What `cache_errors` stores: everything.
fn every_status(_: StatusCode) -> bool {
    true
}

/// Which gRPC responses are stored by default: `OK` only (another status may come from a
/// decoder or an interceptor that refused the request before the method ran).
fn grpc_ok(code: i32) -> bool {
    code == super::grpc::OK
}

/// What `cache_errors` stores of gRPC responses: every status.
fn every_code(_: i32) -> bool {
    true
}

impl HttpOptions {
    /// An operation named `operation` keyed by the `header` header (lowercase; required
    /// unless [`Self::optional`]), with the defaults of [`Spec::new`], 5xx not stored.
    ///
    #[must_use]
    pub const fn new(operation: &'static str, header: &'static str) -> Self {
        Self {
            spec: Spec::new(),
            operation: Cow::Borrowed(operation),
            header: Cow::Borrowed(header),
            optional: false,
            stores: StorePolicy {
                http: not_server_error,
                grpc: grpc_ok,
            },
            prefix: KeyPrefix::new(),
        }
    }

    /// Sets the protocol options.
    #[must_use]
    pub const fn spec(mut self, spec: Spec) -> Self {
        self.spec = spec;
        self
    }

    /// Lets a request without a key run, without any store access.
    #[must_use]
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Stores 5xx responses too.
    #[must_use]
    pub const fn cache_errors(mut self) -> Self {
        self.stores = StorePolicy {
            http: every_status,
            grpc: every_code,
        };
        self
    }

    /// Stores the responses whose status `stores` accepts; the others release the key.
    #[must_use]
    pub const fn store_status(mut self, stores: fn(StatusCode) -> bool) -> Self {
        self.stores.http = stores;
        self
    }

    /// Stores the gRPC responses whose `grpc-status` `stores` accepts; the others release
    /// the key.
    #[must_use]
    pub const fn store_grpc_status(mut self, stores: fn(i32) -> bool) -> Self {
        self.stores.grpc = stores;
        self
    }

    pub(crate) fn set_operation(&mut self, operation: String) {
        self.operation = Cow::Owned(operation);
        self.prefix = KeyPrefix::new();
    }

    pub(crate) fn set_header(&mut self, header: String) {
        self.header = Cow::Owned(header);
    }

    pub(crate) fn operation(&self) -> &str {
        &self.operation
    }

    /// The stored key of the client key `key` (as the header holds it) in `scope`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] — never, as the key was checked when read; the check is made
    /// again rather than assumed.
    pub(crate) fn stored_key(&self, scope: Option<&str>, key: &[u8]) -> Result<StoredKey, Error> {
        let text = IdempotencyKey::checked_str(key)?;
        Ok(crate::protocol::prefixed_storage_key(
            &self.prefix,
            &self.operation,
            scope,
            text,
        ))
    }
}

impl AsRef<HttpOptions> for HttpOptions {
    fn as_ref(&self) -> &HttpOptions {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::HttpOptions;
    use crate::{IdempotencyKey, storage_key};

    /// The options hash a key on their operation's prefix, kept from the first call, and a new
    /// operation starts a new prefix: for names shorter and longer than a SHA-256 block's worth
    /// of prefix, scoped and not, the stored key is always `storage_key`'s.
    #[test]
    fn stored_keys_follow_the_operation_through_a_rename() {
        let key = IdempotencyKey::new("k-1").expect("key");
        let long = "orders.create_payment_with_a_long_name";
        let mut options = HttpOptions::new("short", "idempotency-key");
        for scope in [None, Some("tenant"), None] {
            let stored = options.stored_key(scope, b"k-1").expect("stored key");
            assert_eq!(stored, storage_key("short", scope, &key));
        }
        options.set_operation(long.to_owned());
        for scope in [None, Some("tenant")] {
            let stored = options.stored_key(scope, b"k-1").expect("stored key");
            assert_eq!(stored, storage_key(long, scope, &key), "after the rename");
        }
        let copy = options.clone();
        assert_eq!(
            copy.stored_key(None, b"k-1").expect("stored key"),
            storage_key(long, None, &key),
            "a clone keeps the operation and its prefix"
        );
    }
}
