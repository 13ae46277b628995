//! The serde forms of the vocabulary (feature `serde`): what a value is when it travels as
//! JSON or any serde format. Deserializing validates, so it never yields a value `new` could
//! not build: a key that is not a key, a fingerprint that is not 32 hex digits, a nonce of
//! another length or a TTL or lease out of range is an error.
//!
//! | type | form |
//! |---|---|
//! | `IdempotencyKey` | its string |
//! | `Fingerprint` | 32 lowercase hex digits |
//! | `FencingToken` | `{ "counter": u64, "nonce": "32 hex digits" }` |
//! | `CachedResponse` | `{ "status": u16, "headers": [[name, bytes]…], "body": bytes }` |
//! | `IdempotencyEntry<Processing>` | `{ "fingerprint", "ttl_ms", "lease_ms", "nonce" }` |
//! | `IdempotencyEntry<Completed>` | `{ "fingerprint", "ttl_ms", "lease_ms", "response": CachedResponse or null }` |
//!
//! ```
//! use idempotent_runtime::{Fingerprint, FencingToken};
//!
//! let fp: Fingerprint = serde_json::from_str("\"000000000000000000000000000000ff\"")?;
//! assert_eq!(fp, Fingerprint::from_u128(0xff));
//! assert!(serde_json::from_str::<Fingerprint>("\"ff\"").is_err());
//! let token = FencingToken::new(7, 1);
//! let back: FencingToken = serde_json::from_str(&serde_json::to_string(&token)?)?;
//! assert_eq!(back, token);
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::time::Duration;

use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    CachedResponse, Completed, FencingToken, Fingerprint, IdempotencyEntry, Processing,
    check_duration,
};

/// 16 bytes from 32 hex digits.
fn hex16(text: &str, what: &str) -> Result<u128, String> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("malformed {what} `{text}`: expected 32 hex digits"));
    }
    u128::from_str_radix(text, 16).map_err(|e| format!("malformed {what}: {e}"))
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex16(&text, "fingerprint")
            .map(Self::from_u128)
            .map_err(D::Error::custom)
    }
}

#[derive(Serialize, Deserialize)]
struct TokenForm {
    counter: u64,
    nonce: String,
}

impl Serialize for FencingToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TokenForm {
            counter: self.counter(),
            nonce: format!("{:032x}", self.nonce()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FencingToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = TokenForm::deserialize(deserializer)?;
        let nonce = hex16(&form.nonce, "nonce").map_err(D::Error::custom)?;
        Ok(Self::new(form.counter, nonce))
    }
}

#[derive(Serialize, Deserialize)]
struct ResponseForm {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Serialize for CachedResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ResponseForm {
            status: self.status(),
            headers: self
                .headers()
                .iter()
                .map(|(n, v)| (n.clone(), v.to_vec()))
                .collect(),
            body: self.body().to_vec(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CachedResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = ResponseForm::deserialize(deserializer)?;
        let headers = form
            .headers
            .into_iter()
            .map(|(name, value)| (name, Bytes::from(value)))
            .collect();
        Ok(Self::new(form.status, Bytes::from(form.body)).with_headers(headers))
    }
}

/// Milliseconds of a TTL or lease, checked as every store checks it.
fn lifetime<E: serde::de::Error>(name: &'static str, ms: u64) -> Result<Duration, E> {
    let value = Duration::from_millis(ms);
    check_duration(name, value).map_err(E::custom)?;
    Ok(value)
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Serialize, Deserialize)]
struct ProcessingForm {
    fingerprint: Fingerprint,
    ttl_ms: u64,
    lease_ms: u64,
    nonce: String,
}

impl Serialize for IdempotencyEntry<Processing> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ProcessingForm {
            fingerprint: self.fingerprint(),
            ttl_ms: ms(self.ttl()),
            lease_ms: ms(self.lease()),
            nonce: format!("{:032x}", self.claim_nonce()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IdempotencyEntry<Processing> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = ProcessingForm::deserialize(deserializer)?;
        let nonce = hex16(&form.nonce, "nonce").map_err(D::Error::custom)?;
        Ok(Self::with_nonce(form.fingerprint, nonce)
            .with_ttl(lifetime("ttl", form.ttl_ms)?)
            .with_lease(lifetime("lease", form.lease_ms)?))
    }
}

#[derive(Serialize, Deserialize)]
struct CompletedForm {
    fingerprint: Fingerprint,
    ttl_ms: u64,
    lease_ms: u64,
    response: Option<CachedResponse>,
}

impl Serialize for IdempotencyEntry<Completed> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CompletedForm {
            fingerprint: self.fingerprint(),
            ttl_ms: ms(self.ttl()),
            lease_ms: ms(self.lease()),
            response: self.response().cloned(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IdempotencyEntry<Completed> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let form = CompletedForm::deserialize(deserializer)?;
        let entry = IdempotencyEntry::new(form.fingerprint)
            .with_ttl(lifetime("ttl", form.ttl_ms)?)
            .with_lease(lifetime("lease", form.lease_ms)?);
        Ok(match form.response {
            Some(response) => entry.complete(response),
            None => entry.complete_not_replayable(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(
        value: &T,
    ) {
        let text = serde_json::to_string(value).expect("serializes");
        let back: T = serde_json::from_str(&text).expect("deserializes");
        assert_eq!(&back, value, "{text}");
    }

    #[test]
    fn every_vocabulary_type_round_trips() {
        round_trip(&crate::IdempotencyKey::new("order-7f3a").expect("key"));
        round_trip(&Fingerprint::from_u128(0xdead_beef));
        round_trip(&FencingToken::new(42, u128::MAX));
        let response = CachedResponse::new(201, "body")
            .with_header("a", "1")
            .with_header("a", Bytes::from_static(&[0, 255]));
        round_trip(&response);
        let processing = IdempotencyEntry::new(Fingerprint::from_u128(3))
            .with_ttl(Duration::from_secs(60))
            .with_lease(Duration::from_secs(5));
        round_trip(&processing);
        round_trip(&processing.clone().complete(response));
        round_trip(&processing.complete_not_replayable());
    }

    #[test]
    fn deserializing_validates() {
        let bad = [
            (
                "key",
                serde_json::from_str::<crate::IdempotencyKey>("\"a b\"").is_err(),
            ),
            (
                "fingerprint",
                serde_json::from_str::<Fingerprint>("\"xyz\"").is_err(),
            ),
            (
                "nonce",
                serde_json::from_str::<FencingToken>(r#"{"counter":1,"nonce":"ab"}"#).is_err(),
            ),
            (
                "ttl",
                serde_json::from_str::<IdempotencyEntry<Processing>>(&format!(
                    r#"{{"fingerprint":"{:032x}","ttl_ms":0,"lease_ms":5,"nonce":"{:032x}"}}"#,
                    1, 2
                ))
                .is_err(),
            ),
        ];
        for (what, refused) in bad {
            assert!(refused, "{what} was accepted");
        }
    }
}
