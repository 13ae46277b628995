//! What the SQL stores share: one table, its statements written once for both dialects, the
//! row format, the table-name check and the error mapping. [`super::postgres`] and
//! [`super::sqlite`] only say how their database reads its clock, draws a counter and creates
//! the table.
//!
//! The table (`{t}` is the configured name):
//!
//! | column | what |
//! |---|---|
//! | `key` (text, primary key) | the stored key |
//! | `state` (integer) | 0 processing, 1 completed, 2 done-not-replayable |
//! | `fingerprint`, `nonce` (16 bytes each) | the request's fingerprint, the claim's nonce |
//! | `counter` (integer) | the claim's fencing counter |
//! | `expires_at` (integer, ms since the epoch on the database clock) | lease or TTL end |
//! | `response` (bytes, null unless completed) | the stored response (`store::wire`) |
//!
//! plus `{t}_schema(version)`, an index on `expires_at`, and the counter source (a sequence in
//! PostgreSQL, a one-row table bumped by a trigger in SQLite): it strictly increases per table,
//! so per key, even after rows are deleted.

#[macro_use]
mod store;

use std::time::Duration;

use super::wire::{Reader, decode_response, encode_response};
use crate::store::ReplyLost;
use crate::{
    CachedResponse, CompletedRecord, Error, ExistingEntry, FencingToken, Fingerprint,
    ProcessingRecord,
};

/// The schema version `migrate()` creates and every store call expects.
pub(crate) const SCHEMA_VERSION: i64 = 1;
/// The default table name.
pub(crate) const DEFAULT_TABLE: &str = "idempotency_records";
/// The default timeout of every statement.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Claims between two incremental purges, and rows each purge deletes at most.
pub(crate) const PURGE_EVERY: u32 = 64;
pub(crate) const PURGE_ROWS: u32 = 32;

const PROCESSING: i64 = 0;
const COMPLETED: i64 = 1;
const NOT_REPLAYABLE: i64 = 2;

/// How a database reads its clock, draws a counter and creates the table.
pub(crate) struct Dialect {
    /// An expression: now, in whole ms since the epoch on the database clock, rounded down
    /// (read at each use, not at the start of a transaction): a row whose `expires_at` it
    /// reaches is dead.
    pub(crate) now_ms: &'static str,
    /// An expression: now on the same clock in whole ms, rounded *up*, which a lease or TTL
    /// granted now counts from, so it holds for its whole length (see `store::lifetimes`).
    pub(crate) from_ms: &'static str,
    /// An expression: the next fencing counter of table `t`.
    pub(crate) next_counter: fn(&str) -> String,
    /// The statements that create table `t` and what goes with it, each idempotent, run in
    /// one transaction (a database whose DDL races with itself starts with a lock).
    pub(crate) ddl: fn(&str) -> Vec<String>,
    /// The statement that begins the migration's transaction.
    pub(crate) begin_migration: &'static str,
}

/// Every statement of a store, for its table.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) claim: String,
    pub(crate) lookup: String,
    pub(crate) complete: String,
    pub(crate) completion_state: String,
    pub(crate) release: String,
    pub(crate) renew: String,
    pub(crate) purge: String,
    pub(crate) schema: String,
    pub(crate) ddl: Vec<String>,
    pub(crate) begin_migration: &'static str,
}

impl Statements {
    pub(crate) fn new(table: &str, dialect: &Dialect) -> Self {
        let (t, now, from) = (table, dialect.now_ms, dialect.from_ms);
        let next = (dialect.next_counter)(t);
        let fenced = "key = $1 AND nonce = $2 AND counter = $3";
        Self {
            // A claim takes an absent key or a dead row; a live row is left as it is and
            // returns nothing (the caller then looks it up).
            claim: format!(
                "INSERT INTO {t} (key, state, fingerprint, nonce, counter, expires_at, response) \
                 VALUES ($1, 0, $2, $3, {next}, {from} + $4, NULL) \
                 ON CONFLICT (key) DO UPDATE SET state = 0, fingerprint = excluded.fingerprint, \
                 nonce = excluded.nonce, counter = excluded.counter, \
                 expires_at = excluded.expires_at, response = NULL \
                 WHERE {t}.expires_at <= {now} RETURNING counter"
            ),
            lookup: format!(
                "SELECT state, fingerprint, nonce, counter, response FROM {t} \
                 WHERE key = $1 AND expires_at > {now}"
            ),
            complete: format!(
                "UPDATE {t} SET state = $4, response = $5, expires_at = {from} + $6 \
                 WHERE {fenced} AND fingerprint = $7 AND state = 0 AND expires_at > {now}"
            ),
            completion_state: format!(
                "SELECT state, fingerprint FROM {t} WHERE {fenced} AND expires_at > {now}"
            ),
            release: format!("DELETE FROM {t} WHERE {fenced} AND state = 0 AND expires_at > {now}"),
            renew: format!(
                "UPDATE {t} SET expires_at = {from} + $4 \
                 WHERE {fenced} AND state = 0 AND expires_at > {now}"
            ),
            purge: format!(
                "DELETE FROM {t} WHERE key IN \
                 (SELECT key FROM {t} WHERE expires_at <= {now} LIMIT $1)"
            ),
            schema: format!("SELECT version FROM {t}_schema"),
            ddl: (dialect.ddl)(t),
            begin_migration: dialect.begin_migration,
        }
    }
}

/// A table name: a lowercase SQL identifier, so it can be written into statements as is.
pub(crate) fn check_table(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let valid = name.len() <= 48
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(Error::Misconfigured(format!(
            "invalid table name `{name}`: use 1 to 48 lowercase letters, digits and `_`, starting with a letter or `_`"
        )))
    }
}

/// The bytes a processing row's columns take from a claim.
pub(crate) fn nonce_bytes(token_nonce: u128) -> Vec<u8> {
    token_nonce.to_be_bytes().to_vec()
}

/// A counter as the database stores it (a signed 64-bit integer).
pub(crate) fn counter_column(token: FencingToken) -> Result<i64, Error> {
    i64::try_from(token.counter()).map_err(|_| Error::StaleFencingToken)
}

/// What a completion writes: the state and the response bytes.
pub(crate) fn completion_columns(
    response: Option<&CachedResponse>,
) -> Result<(i64, Option<Vec<u8>>), Error> {
    match response {
        Some(response) => {
            let mut bytes = Vec::with_capacity(response.size() + 16);
            encode_response(response, &mut bytes)?;
            Ok((COMPLETED, Some(bytes)))
        }
        None => Ok((NOT_REPLAYABLE, None)),
    }
}

/// A live row as the trait reports it, and whether it is the processing claim of `nonce`
/// (then its token).
pub(crate) struct LiveRow {
    pub(crate) existing: ExistingEntry,
    pub(crate) claim_of: Option<(u128, u64)>,
}

/// Decodes a live row's columns; anything malformed is `Corrupt`, never absent.
pub(crate) fn decode_row(
    state: i64,
    fingerprint: &[u8],
    nonce: &[u8],
    counter: i64,
    response: Option<&[u8]>,
) -> Result<LiveRow, Error> {
    let corrupt = |what: String| Error::Corrupt(format!("SQL idempotency row: {what}"));
    let fingerprint = <[u8; 16]>::try_from(fingerprint)
        .map(Fingerprint::from_bytes)
        .map_err(|_| corrupt(format!("fingerprint of {} bytes", fingerprint.len())))?;
    let nonce = <[u8; 16]>::try_from(nonce)
        .map(u128::from_be_bytes)
        .map_err(|_| corrupt(format!("nonce of {} bytes", nonce.len())))?;
    let counter = u64::try_from(counter).map_err(|_| corrupt(format!("counter {counter}")))?;
    let existing = match state {
        PROCESSING => ExistingEntry::Processing(ProcessingRecord::new(fingerprint)),
        NOT_REPLAYABLE => ExistingEntry::Completed(CompletedRecord::new(fingerprint, None)),
        COMPLETED => {
            let bytes = response.ok_or_else(|| corrupt("completed without a response".into()))?;
            let mut input = Reader(bytes);
            let response = decode_response(&mut input, None).map_err(corrupt)?;
            if !input.0.is_empty() {
                return Err(corrupt(format!(
                    "{} bytes after the response",
                    input.0.len()
                )));
            }
            ExistingEntry::Completed(CompletedRecord::new(fingerprint, Some(response)))
        }
        other => return Err(corrupt(format!("unknown state {other}"))),
    };
    let claim_of = (state == PROCESSING).then_some((nonce, counter));
    Ok(LiveRow { existing, claim_of })
}

/// Why a fenced completion changed no row, from the claim's row (if it is still live): the
/// same claim completed before (a no-op), another request's fingerprint, or stale.
pub(crate) fn why_not_completed(
    row: Option<(i64, Vec<u8>)>,
    fingerprint: Fingerprint,
) -> Result<(), Error> {
    match row {
        Some((_, stored)) if stored.as_slice() != fingerprint.to_bytes().as_slice() => {
            Err(Error::FingerprintMismatch)
        }
        Some((state, _)) if state != PROCESSING => Ok(()),
        _ => Err(Error::StaleFencingToken),
    }
}

/// A database failure in the vocabulary of the store trait. `migrate` names what to run.
pub(crate) fn from_sqlx(error: sqlx::Error, table: &str) -> Error {
    match &error {
        sqlx::Error::Database(db) if missing_table(&**db) => Error::Misconfigured(format!(
            "the idempotency table `{table}` does not exist: run the store's `migrate()` at start-up ({db})"
        )),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            Error::Corrupt(format!("SQL idempotency row: {error}"))
        }
        _ => Error::StoreUnavailable(Box::new(error)),
    }
}

fn missing_table(db: &dyn sqlx::error::DatabaseError) -> bool {
    // PostgreSQL: undefined_table; SQLite has no code for it, only the message.
    db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
}

/// Runs a store call within `timeout`: past it, the call may still take effect (the
/// statement was sent), so it is a [`ReplyLost`].
pub(crate) async fn within<T>(
    timeout: Duration,
    table: &str,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| from_sqlx(e, table)),
        Err(_) => Err(Error::StoreUnavailable(Box::new(ReplyLost::new(format!(
            "the database did not answer within {timeout:?}"
        ))))),
    }
}

/// The answer of the schema check: the version found, against [`SCHEMA_VERSION`].
pub(crate) fn check_schema(version: Option<i64>, table: &str) -> Result<(), Error> {
    match version {
        Some(v) if v >= SCHEMA_VERSION => Ok(()),
        Some(v) => Err(Error::Misconfigured(format!(
            "the idempotency table `{table}` has schema version {v}, older than {SCHEMA_VERSION}: run the store's `migrate()`"
        ))),
        None => Err(Error::Misconfigured(format!(
            "the idempotency table `{table}` has no schema version: run the store's `migrate()`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for good in ["idempotency_records", "_t", "t2"] {
            assert!(check_table(good).is_ok(), "{good}");
        }
        for bad in ["", "2t", "T", "a-b", "a;drop table x", &"t".repeat(49)] {
            assert!(
                matches!(check_table(bad), Err(Error::Misconfigured(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_rows_are_corrupt() {
        let fp = [1u8; 16];
        let nonce = [2u8; 16];
        for (state, fingerprint, nonce, counter, response) in [
            (9, &fp[..], &nonce[..], 1, None),
            (0, &fp[..3], &nonce[..], 1, None),
            (0, &fp[..], &nonce[..15], 1, None),
            (0, &fp[..], &nonce[..], -1, None),
            (1, &fp[..], &nonce[..], 1, None),
            (1, &fp[..], &nonce[..], 1, Some(&b"\x00"[..])),
        ] {
            assert!(
                matches!(
                    decode_row(state, fingerprint, nonce, counter, response),
                    Err(Error::Corrupt(_))
                ),
                "{state} {fingerprint:?} {counter}"
            );
        }
        let row = decode_row(0, &fp, &nonce, 7, None).expect("valid");
        assert_eq!(row.claim_of, Some((u128::from_be_bytes(nonce), 7)));
    }
}
