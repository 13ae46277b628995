//! What every store checks before it writes, and the unit it keeps time in: one place, so the
//! stores cannot drift apart.
//!
//! Stores keep time in whole milliseconds, and round a lease or TTL *up* to them — the instant
//! it counts from as well as its length (each store's clock reading says how). So a lease
//! never ends before the moment it was granted plus its whole length: the holder's own
//! deadline is when it *sent* the call plus the lease, and a store that ended the lease even a
//! fraction of a millisecond earlier would let another request take the key over while the
//! holder still reads its claim as held.

use std::time::Duration;

use crate::{Completed, Error, IdempotencyEntry, Processing, check_duration};

/// A claim's TTL and lease, in milliseconds rounded up, once both are valid.
pub(crate) fn claim(entry: &IdempotencyEntry<Processing>) -> Result<(u64, u64), Error> {
    check_duration("ttl", entry.ttl())?;
    check_duration("lease", entry.lease())?;
    Ok((millis_up(entry.ttl()), millis_up(entry.lease())))
}

/// A completion's TTL in milliseconds rounded up, once valid.
pub(crate) fn completion(entry: &IdempotencyEntry<Completed>) -> Result<u64, Error> {
    check_duration("ttl", entry.ttl())?;
    Ok(millis_up(entry.ttl()))
}

/// A renewal's lease in milliseconds rounded up, once valid.
pub(crate) fn lease(lease: Duration) -> Result<u64, Error> {
    check_duration("lease", lease)?;
    Ok(millis_up(lease))
}

/// Whole milliseconds, rounded down, saturating: how much of a clock has surely passed.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole milliseconds, rounded up, saturating: a span or instant no shorter than `duration`.
pub(crate) fn millis_up(duration: Duration) -> u64 {
    let whole = millis(duration);
    if duration.subsec_nanos() % 1_000_000 == 0 {
        whole
    } else {
        whole.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{millis, millis_up};

    #[test]
    fn spans_round_up_and_readings_down() {
        for (duration, down, up) in [
            (Duration::ZERO, 0, 0),
            (Duration::from_nanos(1), 0, 1),
            (Duration::from_millis(150), 150, 150),
            (Duration::from_micros(150_001), 150, 151),
            (Duration::from_nanos(150_999_999), 150, 151),
            (
                Duration::from_secs(3) + Duration::from_nanos(1),
                3_000,
                3_001,
            ),
            (Duration::MAX, u64::MAX, u64::MAX),
        ] {
            assert_eq!(
                (millis(duration), millis_up(duration)),
                (down, up),
                "{duration:?}"
            );
        }
    }
}
