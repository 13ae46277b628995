//! Fencing: only the current claim, by its whole token and its own request, changes a record.

use super::{
    Harness, claim, completed, entry, err, existing, expect_stale, fingerprint, fresh_key,
};
use crate::{
    CachedResponse, Error, ExistingEntry, FencingToken, IdempotencyEntry, IdempotencyStore,
};

pub(super) async fn completing_the_same_claim_twice_is_a_no_op<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(5)).await?;
    let first = CachedResponse::from("first");
    let store = h.store();
    store
        .complete(&key, entry.clone().complete(first.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    store
        .complete(&key, entry.complete(CachedResponse::from("second")), token)
        .await
        .map_err(|e| err("second complete", &e))?;
    let replay = completed(existing(h, &key, fingerprint(5)).await?)?;
    ensure!(
        replay.response() == Some(&first),
        "the first result must stand, got {replay:?}"
    );
    Ok(())
}

pub(super) async fn zombie_complete_renew_release_are_rejected_and_change_nothing<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (zombie, zombie_entry) = claim(h, &key, fingerprint(7)).await?;
    h.advance(h.lease() + h.lease() / 2).await;
    let (winner, winner_entry) = claim(h, &key, fingerprint(7)).await?;
    expect_stale("zombie renew", store.renew(&key, zombie, h.lease()).await)?;
    expect_stale("zombie release", store.release(&key, zombie).await)?;
    expect_stale(
        "zombie complete",
        store
            .complete(
                &key,
                zombie_entry
                    .clone()
                    .complete(CachedResponse::from("zombie")),
                zombie,
            )
            .await,
    )?;
    let found = existing(h, &key, fingerprint(7)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "winner's claim changed: {found:?}"
    );
    let winner_result = CachedResponse::from("winner");
    store
        .complete(&key, winner_entry.complete(winner_result.clone()), winner)
        .await
        .map_err(|e| err("winner complete", &e))?;
    expect_stale(
        "zombie complete after the winner",
        store
            .complete(
                &key,
                zombie_entry.complete(CachedResponse::from("zombie")),
                zombie,
            )
            .await,
    )?;
    expect_stale(
        "zombie release after the winner",
        store.release(&key, zombie).await,
    )?;
    let replay = completed(existing(h, &key, fingerprint(7)).await?)?;
    ensure!(
        replay.response() == Some(&winner_result),
        "stored result is {replay:?}"
    );
    Ok(())
}

pub(super) async fn release_then_reclaim<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (first, first_entry) = claim(h, &key, fingerprint(11)).await?;
    store
        .release(&key, first)
        .await
        .map_err(|e| err("release", &e))?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "released record still returned: {got:?}");
    let (second, _entry) = claim(h, &key, fingerprint(11)).await?;
    ensure!(
        second.counter() > first.counter(),
        "counter {} after {}",
        second.counter(),
        first.counter()
    );
    expect_stale(
        "complete with the released token",
        store
            .complete(&key, first_entry.complete(CachedResponse::from("x")), first)
            .await,
    )?;
    Ok(())
}

pub(super) async fn unknown_claims_are_stale<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let made_up = FencingToken::generate(u64::MAX - 1);
    let entry = entry(h, fingerprint(12));
    expect_stale(
        "complete of an absent key",
        store
            .complete(&key, entry.complete(CachedResponse::from("x")), made_up)
            .await,
    )?;
    expect_stale(
        "renew of an absent key",
        store.renew(&key, made_up, h.lease()).await,
    )?;
    expect_stale(
        "release of an absent key",
        store.release(&key, made_up).await,
    )?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "a stale call wrote {got:?}");
    let (token, entry) = claim(h, &key, fingerprint(12)).await?;
    let forged = FencingToken::new(token.counter(), token.nonce() ^ 1);
    expect_stale(
        "complete with the right counter but another nonce",
        store
            .complete(&key, entry.complete(CachedResponse::from("x")), forged)
            .await,
    )?;
    let found = existing(h, &key, fingerprint(12)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "forged token changed the record: {found:?}"
    );
    Ok(())
}

pub(super) async fn a_completion_with_another_fingerprint_is_refused<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(17)).await?;
    let other = IdempotencyEntry::new(fingerprint(18))
        .with_ttl(h.ttl())
        .complete(CachedResponse::from("not this request's"));
    let result = store.complete(&key, other, token).await;
    ensure!(
        matches!(result, Err(Error::FingerprintMismatch)),
        "a completion with another fingerprint: {result:?}"
    );
    let found = existing(h, &key, fingerprint(17)).await?;
    ensure!(
        matches!(&found, ExistingEntry::Processing(e) if e.fingerprint() == fingerprint(17)),
        "the refused completion changed the record: {found:?}"
    );
    store
        .complete(&key, entry.complete(CachedResponse::from("17")), token)
        .await
        .map_err(|e| err("the claim's own completion", &e))?;
    let done = completed(existing(h, &key, fingerprint(17)).await?)?;
    ensure!(
        done.fingerprint() == fingerprint(17),
        "stored fingerprint {:?}",
        done.fingerprint()
    );
    Ok(())
}

pub(super) async fn a_token_with_the_right_nonce_and_another_counter_is_stale<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let (token, entry) = claim(h, &key, fingerprint(19)).await?;
    for counter in [
        token.counter().wrapping_add(1),
        token.counter().wrapping_sub(1),
    ] {
        let forged = FencingToken::new(counter, token.nonce());
        expect_stale(
            "renew with another counter",
            store.renew(&key, forged, h.lease()).await,
        )?;
        expect_stale(
            "release with another counter",
            store.release(&key, forged).await,
        )?;
        expect_stale(
            "complete with another counter",
            store
                .complete(
                    &key,
                    entry.clone().complete(CachedResponse::from("x")),
                    forged,
                )
                .await,
        )?;
    }
    let found = existing(h, &key, fingerprint(19)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "a forged counter changed the record: {found:?}"
    );
    Ok(())
}
