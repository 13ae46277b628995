//! Claiming and replaying: a claim, the record others see, re-sending, the stored result.

use bytes::Bytes;

use super::{
    Harness, claim, claimed, completed, entry, err, existing, expect_stale, fingerprint, fresh_key,
};
use crate::{CachedResponse, ExistingEntry, FencingToken, IdempotencyStore, InsertResult};

pub(super) async fn claim_then_replay<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(1)).await?;
    let response = CachedResponse::from("first result");
    h.store()
        .complete(&key, entry.complete(response.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    for _ in 0..2 {
        let replay = completed(existing(h, &key, fingerprint(1)).await?)?;
        ensure!(replay.response() == Some(&response), "replayed {replay:?}");
        ensure!(
            replay.fingerprint() == fingerprint(1),
            "fingerprint {:?}",
            replay.fingerprint()
        );
    }
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(
        matches!(&got, Some(ExistingEntry::Completed(e)) if e.response() == Some(&response)),
        "get returned {got:?}"
    );
    Ok(())
}

pub(super) async fn in_flight_record_is_reported_with_its_fingerprint<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (_token, _entry) = claim(h, &key, fingerprint(2)).await?;
    let found = existing(h, &key, fingerprint(2)).await?;
    ensure!(
        matches!(&found, ExistingEntry::Processing(e) if e.fingerprint() == fingerprint(2)),
        "found {found:?}"
    );
    let got = h.store().get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(
        matches!(got, Some(ExistingEntry::Processing(_))),
        "get returned {got:?}"
    );
    Ok(())
}

pub(super) async fn other_fingerprint_sees_the_stored_one<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(3)).await?;
    let found = existing(h, &key, fingerprint(4)).await?;
    ensure!(
        found.fingerprint() == fingerprint(3),
        "in flight: found {found:?}"
    );
    h.store()
        .complete(&key, entry.complete(CachedResponse::from("3")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let found = existing(h, &key, fingerprint(4)).await?;
    ensure!(
        found.fingerprint() == fingerprint(3),
        "completed: found {found:?}"
    );
    Ok(())
}

pub(super) async fn a_re_sent_claim_is_the_same_claim<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let store = h.store();
    let sent = entry(h, fingerprint(20));
    let (token, _) = match store.try_insert(&key, sent.clone()).await {
        Ok(InsertResult::Claimed {
            fencing_token,
            entry,
        }) => (fencing_token, entry),
        other => return Err(format!("first send: expected a claim, got {other:?}")),
    };
    ensure!(
        token.nonce() == sent.claim_nonce(),
        "the token's nonce is not the entry's"
    );
    // The reply was "lost": the same claim, sent again, is the caller's own.
    match store.try_insert(&key, sent.clone()).await {
        Ok(InsertResult::Claimed { fencing_token, .. }) => ensure!(
            fencing_token == token,
            "re-sent claim got {fencing_token:?}, first {token:?}"
        ),
        other => {
            return Err(format!(
                "re-sent claim: expected the same claim, got {other:?}"
            ));
        }
    }
    // Another request (another nonce) still sees it in flight.
    let found = existing(h, &key, fingerprint(20)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "another request found {found:?}"
    );
    store
        .release(&key, token)
        .await
        .map_err(|e| err("release of the re-sent claim", &e))?;
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(got.is_none(), "released record still returned: {got:?}");
    // Once completed, re-sending the claim finds the result: it never runs again.
    let (token, first) = claim(h, &key, fingerprint(20)).await?;
    let again = first.clone();
    store
        .complete(&key, first.complete(CachedResponse::from("20")), token)
        .await
        .map_err(|e| err("complete", &e))?;
    match store.try_insert(&key, again).await {
        Ok(InsertResult::Exists(ExistingEntry::Completed(_))) => Ok(()),
        other => Err(format!("re-sent completed claim: got {other:?}")),
    }
}

pub(super) async fn responses_round_trip_exactly<H: Harness>(h: &H) -> Result<(), String> {
    let key = fresh_key()?;
    let body: Bytes = (0..=255u8).cycle().take(4096).collect();
    let response = CachedResponse::new(201, body)
        .with_header("content-type", "application/octet-stream")
        .with_header("link", "</a>")
        .with_header("x-binary", Bytes::from_static(&[0, 255, 10, 13]))
        .with_header("link", "</b>");
    let (token, entry) = claim(h, &key, fingerprint(16)).await?;
    h.store()
        .complete(&key, entry.complete(response.clone()), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let replay = completed(existing(h, &key, fingerprint(16)).await?)?;
    ensure!(
        replay.response() == Some(&response),
        "round trip changed the response: {replay:?}"
    );
    Ok(())
}

pub(super) async fn not_replayable_results_are_kept_as_done<H: Harness>(
    h: &H,
) -> Result<(), String> {
    let key = fresh_key()?;
    let (token, entry) = claim(h, &key, fingerprint(13)).await?;
    h.store()
        .complete(&key, entry.complete_not_replayable(), token)
        .await
        .map_err(|e| err("complete", &e))?;
    let done = completed(existing(h, &key, fingerprint(13)).await?)?;
    ensure!(
        done.response().is_none(),
        "not-replayable record has a response: {done:?}"
    );
    Ok(())
}

/// A store that answers at once ([`crate::store::ImmediateStore`]) is one store on both faces:
/// a claim taken on one is seen, fenced and completed on the other. A store without that face
/// passes as it is.
pub(super) async fn the_immediate_face_is_the_same_store<H: Harness>(h: &H) -> Result<(), String> {
    let store = h.store();
    let Some(now) = store.immediate() else {
        return Ok(());
    };
    // Claimed now, seen and completed by the async face.
    let key = fresh_key()?;
    let (token, processing) = claimed(
        "try_insert_now",
        now.try_insert_now(&key, entry(h, fingerprint(21))),
    )?;
    let found = existing(h, &key, fingerprint(21)).await?;
    ensure!(
        matches!(found, ExistingEntry::Processing(_)),
        "the async face found {found:?} under a claim taken now"
    );
    let response = CachedResponse::from("now");
    store
        .complete(&key, processing.complete(response.clone()), token)
        .await
        .map_err(|e| err("complete of a claim taken now", &e))?;
    // Claimed by the async face, fenced and completed now.
    let key = fresh_key()?;
    let (token, processing) = claim(h, &key, fingerprint(22)).await?;
    let forged = FencingToken::new(token.counter().wrapping_add(1), token.nonce());
    expect_stale(
        "complete_now with another counter",
        now.complete_now(&key, processing.clone().complete(response.clone()), forged),
    )?;
    now.complete_now(&key, processing.complete(response.clone()), token)
        .map_err(|e| err("complete_now", &e))?;
    let replay = match now.try_insert_now(&key, entry(h, fingerprint(22))) {
        Ok(InsertResult::Exists(found)) => completed(found)?,
        other => {
            return Err(format!(
                "try_insert_now: expected the record, got {other:?}"
            ));
        }
    };
    ensure!(
        replay.response() == Some(&response),
        "try_insert_now replayed {replay:?}"
    );
    let got = store.get(&key).await.map_err(|e| err("get", &e))?;
    ensure!(
        matches!(&got, Some(ExistingEntry::Completed(e)) if e.response() == Some(&response)),
        "get after complete_now returned {got:?}"
    );
    Ok(())
}
