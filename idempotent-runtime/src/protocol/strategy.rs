//! A user's [`FingerprintStrategy`] in the protocol: the content it is given.

use serde::Serialize;

use crate::{Error, Fingerprint, FingerprintError, FingerprintStrategy};

/// The fingerprint `strategy` gives `request` for `operation`. A strategy hashes bytes, so it
/// sees the request as its JSON (`serde_json`), which it may parse to leave a field out or to
/// normalize one. The default strategy never comes here: it streams the value into its hasher.
///
/// # Errors
/// [`Error::Fingerprint`] when `request` fails to serialize.
pub(crate) fn fingerprint_value<S, Q>(
    strategy: &S,
    operation: &str,
    request: &Q,
) -> Result<Fingerprint, Error>
where
    S: FingerprintStrategy + ?Sized,
    Q: Serialize + ?Sized,
{
    let content = serde_json::to_vec(request).map_err(|e| FingerprintError(e.to_string()))?;
    Ok(strategy.compute(operation, &content))
}
