//! Lifetimes: leases lapse and renew, TTLs expire, invalid durations write nothing.

use std::time::Duration;

use super::{
    Harness, claim, completed, entry, err, existing, expect_stale, fingerprint, fresh_key,
};
use crate::{CachedResponse, Error, ExistingEntry, IdempotencyStore};

pub(super) async fn lease_lapse_lets_a_retry_reclaim_with_a_larger_token<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (old, _entry) = claim(h, &key, fingerprint(6)).await?;
    h.advance(h.lease() + h.lease() / 2).await;
    let (new, _entry) = claim(h, &key, fingerprint(6)).await?;
    ensure!(
        new.counter() > old.counter(),
        "counter {} after {}",
        new.counter(),
        old.counter()
    );
    ensure!(new.nonce() != old.nonce(), "nonce reused");
    Ok(())
}

pub(super) async fn renew_keeps_a_claim_alive_past_its_first_lease<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(8)).await?;
    for _ in 0..3 {
        h.advance(h.lease() * 2 / 3).await;
        store
            .renew(&key, token, h.lease())
            .await
            .map_err(|e| err("renew", &e))?;
    }
    let found = existing(h, &key, fingerprint(8)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "after renewals: {found:?}"
    );
    store
        .complete(&key, entry.complete(CachedResponse::from("late")), token)
        .await
        .map_err(|e| err("complete after renewals", &e))?;
    expect_stale(
        "renew of a completed claim",
        store.renew(&key, token, h.lease()).await,
    )?;
    expect_stale(
        "release of a completed claim",
        store.release(&key, token).await,
    )?;
    let replay = completed(existing(h, &key, fingerprint(8)).await?)?;
    ensure!(
        replay.response().is_some(),
        "completed record was lost: {replay:?}"
    );
    Ok(())
}

pub(super) async fn ttl_expiry_frees_the_key<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(9)).await?;
    h.store()
        .complete(&key, entry.complete(CachedResponse::from("9")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    h.advance(h.ttl() / 2).await;
    let _still_replayed = completed(existing(h, &key, fingerprint(9)).await?)?;
    h.advance(h.ttl()).await;
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "expired record still returned: {got:?}");
    let (again, _entry) = claim(h, &key, fingerprint(10)).await?;
    ensure!(
        again.counter() > token.counter(),
        "counter {} after {}",
        again.counter(),
        token.counter()
    );
    Ok(())
}

pub(super) async fn invalid_durations_write_nothing<H: Harness>(h: &H) -> Result<(), String> {
    let store = h.store();
    let too_long = crate::MAX_DURATION + Duration::from_secs(1);
    for (what, bad) in [
        (
            "zero ttl",
            entry(h, fingerprint(14)).with_ttl(Duration::ZERO),
        ),
        (
            "zero lease",
            entry(h, fingerprint(14)).with_lease(Duration::ZERO),
        ),
        (
            "ttl over the maximum",
            entry(h, fingerprint(14)).with_ttl(too_long),
        ),
    ] {
        let key = fresh_key()?;
        let result = store.try_insert(&key, bad).await;
        ensure!(
            matches!(result, Err(Error::InvalidDuration { .. })),
            "{what}: got {result:?}"
        );
        let got = store.get(&key).await.map_err(|e| err("get", &e))?;
        ensure!(got.is_none(), "{what} wrote {got:?}");
    }
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(15)).await?;
    let renewed = store.renew(&key, token, Duration::ZERO).await;
    ensure!(
        matches!(renewed, Err(Error::InvalidDuration { .. })),
        "zero renew: {renewed:?}"
    );
    let done = entry
        .with_ttl(Duration::ZERO)
        .complete(CachedResponse::from("x"));
    let result = store.complete(&key, done, token).await;
    ensure!(
        matches!(result, Err(Error::InvalidDuration { .. })),
        "zero ttl complete: {result:?}"
    );
    let found = existing(h, &key, fingerprint(15)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "invalid complete wrote {found:?}"
    );
    Ok(())
}
