//! Model checking with shuttle: claim vs claim vs complete on the real `MemoryStore` code,
//! whose locks become shuttle's under `--cfg shuttle`. Run by `.ci/run` as
//! `RUSTFLAGS="--cfg shuttle" cargo test -p idempotent-tests --test shuttle_model`.
#![cfg(shuttle)]

use std::sync::Arc;

use idempotent_runtime::{
    CachedResponse, ExistingEntry, Fingerprint, IdempotencyEntry, IdempotencyKey, IdempotencyStore,
    InsertResult, MemoryStore,
};
use shuttle::future::block_on;
use shuttle::sync::Mutex;

fn key() -> IdempotencyKey {
    IdempotencyKey::new("shuttle-key").expect("valid")
}

/// What one racer saw.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    ClaimedAndCompleted(String),
    InFlight,
    Replayed(String),
}

fn racer(store: MemoryStore, name: &'static str) -> Seen {
    block_on(async move {
        let key = key();
        match store
            .try_insert(&key, IdempotencyEntry::new(Fingerprint::from_u128(1)))
            .await
        {
            Ok(InsertResult::Claimed {
                fencing_token,
                entry,
            }) => {
                let result = format!("done by {name}");
                store
                    .complete(
                        &key,
                        entry.complete(CachedResponse::from(result.clone())),
                        fencing_token,
                    )
                    .await
                    .expect("the holder's completion is accepted");
                Seen::ClaimedAndCompleted(result)
            }
            Ok(InsertResult::Exists(ExistingEntry::Processing(_))) => Seen::InFlight,
            Ok(InsertResult::Exists(ExistingEntry::Completed(done))) => Seen::Replayed(
                String::from_utf8_lossy(done.response().expect("replayable").body()).into_owned(),
            ),
            Err(e) => panic!("store error {e}"),
        }
    })
}

fn claim_claim_complete() {
    let store = MemoryStore::builder().shards(2).build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let (store, seen) = (store.clone(), seen.clone());
            shuttle::thread::spawn(move || {
                let outcome = racer(store, name);
                seen.lock().expect("lock").push(outcome);
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let seen = seen.lock().expect("lock").clone();
    let winners: Vec<&String> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::ClaimedAndCompleted(result) => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim in {seen:?}");
    for s in &seen {
        if let Seen::Replayed(result) = s {
            assert_eq!(
                result, winners[0],
                "a replay shows the winner's result: {seen:?}"
            );
        }
    }
    let final_state = block_on(store.get(&key())).expect("get");
    assert!(
        matches!(final_state, Some(ExistingEntry::Completed(_))),
        "{final_state:?}"
    );
}

#[test]
fn claim_vs_claim_vs_complete_random() {
    shuttle::check_random(claim_claim_complete, 2_000);
}

#[test]
fn claim_vs_claim_vs_complete_pct() {
    shuttle::check_pct(claim_claim_complete, 2_000, 3);
}
