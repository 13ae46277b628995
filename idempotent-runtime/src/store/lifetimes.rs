//! What every store checks before it writes, and the unit it keeps time in: one place, so the
//! stores cannot drift apart.

use std::time::Duration;

use crate::{Completed, Error, IdempotencyEntry, Processing, check_duration};

/// A claim's TTL and lease, in milliseconds, once both are valid.
pub(crate) fn claim(entry: &IdempotencyEntry<Processing>) -> Result<(u64, u64), Error> {
    check_duration("ttl", entry.ttl())?;
    check_duration("lease", entry.lease())?;
    Ok((millis(entry.ttl()), millis(entry.lease())))
}

/// A completion's TTL in milliseconds, once valid.
pub(crate) fn completion(entry: &IdempotencyEntry<Completed>) -> Result<u64, Error> {
    check_duration("ttl", entry.ttl())?;
    Ok(millis(entry.ttl()))
}

/// A renewal's lease in milliseconds, once valid.
pub(crate) fn lease(lease: Duration) -> Result<u64, Error> {
    check_duration("lease", lease)?;
    Ok(millis(lease))
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
