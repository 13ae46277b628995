//! The stored value format of [`super::ValkeyStore`]: one string value per record, versioned.
//!
//! Version 2 (all integers big-endian):
//! ```text
//! 0x02 | state: b'p' processing, b'c' completed, b'n' done-not-replayable
//!      | fingerprint (16) | claim nonce (16) | fencing counter u64
//!      | for b'c': status u16 | header count u16
//!                  | (name len u16, name, value len u32, value)* | body len u32 | body
//! ```
//! The scripts read only the 42-byte header: the fingerprint (bytes 3..=18, 1-based), the
//! claim's token — nonce and counter, bytes 19..=42 — which every fenced step compares whole,
//! and the state. A claim sends only its fingerprint and nonce ([`claim_id`]); the claim
//! script writes the version and state before them and the counter (server time in µs)
//! after. Version 1 (a TTL where the counter now is; the counter was not kept) is refused as
//! corrupt: records live at most a TTL, so an upgrade waits out the old ones or starts with a
//! new prefix. Decoding checks every length against what is left: arbitrary bytes give an
//! error, never a panic and never a partial record.

use bytes::Bytes;

use crate::store::wire::{Reader, decode_response, encode_response};
use crate::{
    CachedResponse, CompletedRecord, Error, ExistingEntry, FencingToken, Fingerprint,
    ProcessingRecord,
};

const VERSION: u8 = 2;

/// The size of the fixed header: version, state, fingerprint, nonce, counter.
pub(crate) const HEADER: usize = 42;

/// Encodes the completed record of the claim `token` (a processing record is written by the
/// claim script from [`claim_id`]).
pub(crate) fn encode_record(
    fingerprint: Fingerprint,
    token: FencingToken,
    state: State<'_>,
) -> Result<Vec<u8>, Error> {
    let size = match state {
        State::Completed(response) => response.size() + 16,
        State::NotReplayable => 0,
    };
    let mut out = Vec::with_capacity(HEADER + size);
    let state_byte = match state {
        State::Completed(_) => b'c',
        State::NotReplayable => b'n',
    };
    out.extend_from_slice(&[VERSION, state_byte]);
    out.extend_from_slice(&claim_id(fingerprint, token.nonce()));
    out.extend_from_slice(&token.counter().to_be_bytes());
    if let State::Completed(response) = state {
        encode_response(response, &mut out)?;
    }
    Ok(out)
}

/// What a claim sends: the fingerprint and the nonce (32 bytes), bytes 3..=34 of the
/// processing record the claim script writes — it puts the version and the state before them
/// and the counter (server time) after, so it has nothing else to check.
pub(crate) fn claim_id(fingerprint: Fingerprint, nonce: u128) -> [u8; 32] {
    let mut out = [0; 32];
    out[..16].copy_from_slice(&fingerprint.to_bytes());
    out[16..].copy_from_slice(&nonce.to_be_bytes());
    out
}

/// What a completed record holds besides its header.
#[derive(Debug, Clone, Copy)]
pub(crate) enum State<'a> {
    Completed(&'a CachedResponse),
    NotReplayable,
}

/// The live record `bytes` encode. The response's body and header values share `bytes` (a
/// reply's buffer, taken over, not copied): a replay copies nothing.
///
/// # Errors
/// [`Error::Corrupt`] when the bytes do not fit the format: an unreadable record is never
/// treated as absent.
pub(crate) fn decode_record(bytes: Vec<u8>) -> Result<ExistingEntry, Error> {
    decode(&Bytes::from(bytes)).map_err(|what| Error::Corrupt(format!("valkey record: {what}")))
}

fn decode(bytes: &Bytes) -> Result<ExistingEntry, String> {
    let mut input = Reader(bytes);
    let [version, state] = input.array("header")?;
    if version != VERSION {
        return Err(format!("unknown format version {version}"));
    }
    let fingerprint = Fingerprint::from_bytes(input.array("fingerprint")?);
    let _token: [u8; 24] = input.array("fencing token")?;
    let existing = match state {
        b'p' => ExistingEntry::Processing(ProcessingRecord::new(fingerprint)),
        b'n' => ExistingEntry::Completed(CompletedRecord::new(fingerprint, None)),
        b'c' => {
            let response = decode_response(&mut input, Some(bytes))?;
            ExistingEntry::Completed(CompletedRecord::new(fingerprint, Some(response)))
        }
        other => return Err(format!("unknown state byte {other}")),
    };
    if !input.0.is_empty() {
        return Err(format!("{} trailing bytes", input.0.len()));
    }
    Ok(existing)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record a copy of `bytes` encodes (the tests keep their bytes to cut and flip).
    pub(super) fn decoded(bytes: &[u8]) -> Result<ExistingEntry, Error> {
        decode_record(bytes.to_vec())
    }

    fn completed(response: &CachedResponse) -> Vec<u8> {
        encode_record(
            Fingerprint::from_u128(9),
            FencingToken::new(1000, 5),
            State::Completed(response),
        )
        .expect("encodes")
    }

    /// A replay's response is the reply's own bytes: body and header values are views of the
    /// record's buffer, not copies of it.
    #[test]
    fn a_decoded_response_shares_the_records_buffer() {
        let response = CachedResponse::new(201, "the body").with_header("x-a", "a value");
        let record = completed(&response);
        let whole = record.as_ptr_range();
        let within = |part: &[u8]| {
            let part = part.as_ptr_range();
            whole.start <= part.start && part.end <= whole.end
        };
        let Ok(ExistingEntry::Completed(done)) = decode_record(record) else {
            panic!("not completed");
        };
        let replayed = done.response().expect("a response");
        assert_eq!(replayed, &response);
        assert!(within(replayed.body()), "the body is a view");
        assert!(within(&replayed.headers()[0].1), "a header value is a view");
    }

    #[test]
    fn records_round_trip() {
        let response = CachedResponse::new(201, "body")
            .with_header("content-type", "application/json")
            .with_header("x-repeat", "1")
            .with_header("x-repeat", "2");
        let Ok(ExistingEntry::Completed(done)) = decoded(&completed(&response)) else {
            panic!("not completed");
        };
        assert_eq!(done.response(), Some(&response));
        assert_eq!(done.fingerprint(), Fingerprint::from_u128(9));
        let fp = Fingerprint::from_u128(3);
        // As the claim script writes it: version, state, the claim's id, the counter.
        let mut processing = vec![VERSION, b'p'];
        processing.extend_from_slice(&claim_id(fp, 5));
        processing.extend_from_slice(&1000u64.to_be_bytes());
        assert_eq!(processing.len(), HEADER);
        assert!(
            matches!(decoded(&processing), Ok(ExistingEntry::Processing(e)) if e.fingerprint() == fp)
        );
        let gone =
            encode_record(fp, FencingToken::new(1000, 5), State::NotReplayable).expect("encodes");
        assert!(
            matches!(decoded(&gone), Ok(ExistingEntry::Completed(e)) if e.response().is_none())
        );
    }

    #[test]
    fn golden_bytes_pin_version_2() {
        let response = CachedResponse::new(200, "hi").with_header("a", "b");
        let bytes = completed(&response);
        let mut expected = vec![2, b'c'];
        expected.extend_from_slice(&Fingerprint::from_u128(9).to_bytes());
        expected.extend_from_slice(&5u128.to_be_bytes());
        expected.extend_from_slice(&1000u64.to_be_bytes());
        expected.extend_from_slice(&[
            0, 200, 0, 1, 0, 1, b'a', 0, 0, 0, 1, b'b', 0, 0, 0, 2, b'h', b'i',
        ]);
        assert_eq!(bytes, expected);
        // The scripts find the fingerprint at bytes 3..=18 and the token at 19..=42 (1-based).
        assert_eq!(bytes[2..18], Fingerprint::from_u128(9).to_bytes());
        assert_eq!(bytes[18..34], 5u128.to_be_bytes());
        assert_eq!(bytes[34..42], 1000u64.to_be_bytes());
    }

    #[test]
    fn truncation_trailing_bytes_and_unknown_versions_are_corrupt() {
        let bytes = completed(&CachedResponse::new(200, "hello"));
        for cut in 0..bytes.len() {
            assert!(
                matches!(decoded(&bytes[..cut]), Err(Error::Corrupt(_))),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decoded(&longer).is_err());
        let mut other = bytes.clone();
        other[0] = 1;
        assert!(matches!(decoded(&other), Err(Error::Corrupt(m)) if m.contains("version 1")));
        let mut state = bytes;
        state[1] = b'z';
        assert!(decoded(&state).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::tests::decoded;
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Arbitrary bytes never panic the decoder: a record or `Corrupt`.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            match decoded(&bytes) {
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        /// Arbitrary bytes behind a valid header exercise the response decoder.
        #[test]
        fn arbitrary_responses_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut bytes = vec![VERSION, b'c'];
            bytes.extend_from_slice(&claim_id(Fingerprint::from_u128(1), 1));
            bytes.extend_from_slice(&1u64.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decoded(&bytes);
        }

        /// Valid records round-trip; with one byte flipped they decode or report, never panic.
        #[test]
        fn mutated_records_never_panic(
            status in any::<u16>(),
            headers in proptest::collection::vec(("[a-z-]{0,12}", proptest::collection::vec(any::<u8>(), 0..16)), 0..4),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<(usize, u8)>(),
        ) {
            let mut response = CachedResponse::new(status, body);
            for (name, value) in headers {
                response = response.with_header(name, value);
            }
            let mut bytes = encode_record(Fingerprint::from_u128(2), FencingToken::new(60_000, 3), State::Completed(&response))
                .expect("encodes");
            let Ok(ExistingEntry::Completed(done)) = decoded(&bytes) else {
                return Err(TestCaseError::fail("did not round-trip"));
            };
            prop_assert_eq!(done.response(), Some(&response));
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1 | 1;
            let _ = decoded(&bytes);
        }
    }
}
