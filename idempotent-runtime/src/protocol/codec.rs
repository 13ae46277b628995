//! How a handler's result becomes a stored [`CachedResponse`] and back: [`ResultCodec`].

mod json;

use std::cell::RefCell;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{CachedResponse, Error};

/// What to do with a handler's result.
#[derive(Debug)]
pub enum Disposition {
    /// Store this response and replay it to retries.
    Complete(CachedResponse),
    /// The side effect happened but the result cannot be kept (too large or unserializable):
    /// complete as "done, not replayable".
    NotReplayable,
    /// Nothing was committed: release the claim so a retry may run again.
    Release,
}

/// Turns results of type `R` into stored responses and back. Implemented by [`Plain`] and
/// [`CacheErrors`] for `Result<T, E>`.
#[diagnostic::on_unimplemented(
    message = "`#[idempotent]` on a plain async fn needs it to return `Result<T, E>`, not `{R}`",
    label = "the return type must be `Result<T, E>` with `T: Serialize + DeserializeOwned` and `E: From<idempotent_runtime::Error>`",
    note = "with `cache_errors`, `E` must be `Serialize + DeserializeOwned` too"
)]
pub trait ResultCodec<R> {
    /// What to do with `result`, given the largest body that may be stored.
    fn encode(result: &R, max_body: usize) -> Disposition;
    /// The result a stored response stands for.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the response cannot be decoded.
    fn decode(response: &CachedResponse) -> Result<R, Error>;
    /// The result that reports `error` to the caller.
    fn error(error: Error) -> R;
}

/// Plain mode: `Ok` values are stored and replayed through `serde_json`; an `Err` releases the
/// claim so a retry runs again (return an error only when nothing was committed).
#[derive(Debug, Clone, Copy)]
pub struct Plain;

/// Plain mode with `cache_errors`: `Err` values are stored and replayed like `Ok` ones.
#[derive(Debug, Clone, Copy)]
pub struct CacheErrors;

/// Status of a stored `Ok` value in plain mode.
const OK: u16 = 200;
/// Status of a stored `Err` value in plain mode with `cache_errors`.
const ERR: u16 = 500;

/// A buffer of this thread's kept for the next encoding unless it grew past this.
const KEPT_BUFFER: usize = 64 << 10;

thread_local! {
    /// Where results are encoded: `serde_json::to_vec` grows a fresh vector from 128 bytes
    /// by doubling (two reallocations for a 300-byte result) and then another allocation
    /// when it becomes `Bytes`; from here the body is copied once into an exact one.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn encode_json<V: Serialize>(status: u16, value: &V, max_body: usize) -> Disposition {
    let fits = |body: &[u8]| body.len() <= max_body;
    let body = ENCODED.with(|cell| {
        // Taken only here, never across a call out but `serialize`; if a `Serialize` impl
        // encodes a result itself, the inner one gets a vector of its own.
        let Ok(mut buffer) = cell.try_borrow_mut() else {
            return serde_json::to_vec(value)
                .ok()
                .filter(|body| fits(body))
                .map(Bytes::from);
        };
        buffer.clear();
        let encoded = json::write(&mut buffer, value).is_ok() && fits(&buffer);
        let body = encoded.then(|| Bytes::copy_from_slice(&buffer));
        if buffer.capacity() > KEPT_BUFFER {
            *buffer = Vec::new();
        }
        body
    });
    match body {
        Some(body) => Disposition::Complete(CachedResponse::new(status, body)),
        None => Disposition::NotReplayable,
    }
}

fn decode_json<V: DeserializeOwned>(response: &CachedResponse) -> Result<V, Error> {
    serde_json::from_slice(response.body())
        .map_err(|e| Error::Corrupt(format!("stored result does not decode: {e}")))
}

/// `Ok` values through `serde_json`; what an `Err` becomes is the codec's `err` (release, or
/// store it too).
fn encode_result<T: Serialize, E>(
    result: &Result<T, E>,
    max_body: usize,
    err: impl FnOnce(&E) -> Disposition,
) -> Disposition {
    match result {
        Ok(value) => encode_json(OK, value, max_body),
        Err(error) => err(error),
    }
}

/// The stored `Ok` value, or what the codec's `err` reads from another status (`None`: a
/// status this codec never stores).
fn decode_result<T: DeserializeOwned, E>(
    response: &CachedResponse,
    err: impl FnOnce(&CachedResponse) -> Option<Result<E, Error>>,
) -> Result<Result<T, E>, Error> {
    if response.status() == OK {
        return decode_json(response).map(Ok);
    }
    match err(response) {
        Some(stored) => stored.map(Err),
        None => Err(Error::Corrupt(format!(
            "stored plain result has status {}",
            response.status()
        ))),
    }
}

impl<T, E> ResultCodec<Result<T, E>> for Plain
where
    T: Serialize + DeserializeOwned,
    E: From<Error>,
{
    fn encode(result: &Result<T, E>, max_body: usize) -> Disposition {
        encode_result(result, max_body, |_| Disposition::Release)
    }

    fn decode(response: &CachedResponse) -> Result<Result<T, E>, Error> {
        decode_result(response, |_| None)
    }

    fn error(error: Error) -> Result<T, E> {
        Err(E::from(error))
    }
}

impl<T, E> ResultCodec<Result<T, E>> for CacheErrors
where
    T: Serialize + DeserializeOwned,
    E: From<Error> + Serialize + DeserializeOwned,
{
    fn encode(result: &Result<T, E>, max_body: usize) -> Disposition {
        encode_result(result, max_body, |error| encode_json(ERR, error, max_body))
    }

    fn decode(response: &CachedResponse) -> Result<Result<T, E>, Error> {
        decode_result(response, |stored| {
            (stored.status() == ERR).then(|| decode_json(stored))
        })
    }

    fn error(error: Error) -> Result<T, E> {
        Err(E::from(error))
    }
}

#[cfg(test)]
mod tests {
    use super::{Disposition, ENCODED, KEPT_BUFFER, encode_json};

    fn body(disposition: &Disposition) -> Vec<u8> {
        match disposition {
            Disposition::Complete(response) => response.body().to_vec(),
            _ => panic!("not stored"),
        }
    }

    /// The thread's buffer is emptied before each encoding: a short result after a long one
    /// carries none of its bytes.
    #[test]
    fn a_short_result_after_a_long_one_is_only_itself() {
        assert_eq!(
            body(&encode_json(200, &"x".repeat(1000), usize::MAX)).len(),
            1002
        );
        assert_eq!(body(&encode_json(200, &"ab", usize::MAX)), b"\"ab\"");
        assert!(matches!(
            encode_json(200, &"x".repeat(100), 10),
            Disposition::NotReplayable
        ));
    }

    /// A value whose `Serialize` encodes another result meanwhile (the buffer is taken): both
    /// are encoded whole.
    #[test]
    fn a_result_encoded_while_encoding_gets_a_buffer_of_its_own() {
        struct Nested;
        impl serde::Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let inner = body(&encode_json(200, &[1, 2, 3], usize::MAX));
                serializer.serialize_str(&String::from_utf8_lossy(&inner))
            }
        }
        assert_eq!(body(&encode_json(200, &Nested, usize::MAX)), b"\"[1,2,3]\"");
    }

    /// A buffer that grew for a large result is given back, not kept for the thread's life.
    #[test]
    fn a_buffer_grown_for_a_large_result_is_not_kept() {
        let _ = encode_json(200, &"x".repeat(KEPT_BUFFER * 2), usize::MAX);
        assert_eq!(ENCODED.with(|cell| cell.borrow().capacity()), 0);
        let _ = encode_json(200, &"x".repeat(100), usize::MAX);
        assert!(ENCODED.with(|cell| cell.borrow().capacity()) > 0);
    }
}
