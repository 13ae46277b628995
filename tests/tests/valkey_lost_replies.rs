//! `ValkeyStore` behind a TCP fault proxy (`idempotent_tests::fault_proxy`) between it and a
//! real `redis-server`: a claim, a completion or a renewal whose reply is lost (the connection
//! dies after the server ran it), delayed past the client's timeout, or whose request never
//! arrives. No key ever runs twice; a lost completion is retried (`complete_with_retry`) and
//! the retry is a no-op; a lost claim does not block its key for a lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idempotent_runtime::{Error, Idempotent, ValkeyStore};
use idempotent_tests::fault_proxy::{Fault, FaultProxy, valkey};
use idempotent_tests::gate::Gate;
use idempotent_tests::redis_server::RedisServer;
use idempotent_tests::valkey::{charge, key};

const TIMEOUT: Duration = Duration::from_millis(300);

const FAULTS: [Fault; 3] = [
    Fault::LoseReply,
    Fault::DelayReply(Duration::from_millis(600)),
    Fault::CutRequest,
];

/// A store connected through `proxy`, its scripts loaded (a first call runs each once), so a
/// fault hits a script that runs, not a `NOSCRIPT` reply.
async fn store_behind(proxy: &FaultProxy) -> ValkeyStore {
    let store = ValkeyStore::builder()
        .url(proxy.url())
        .timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect through the proxy");
    let warm = AtomicUsize::new(0);
    charge(&store, &key(&format!("warm-up-{}", proxy.url())), &warm)
        .await
        .expect("warm-up call");
    let _ = Idempotent::new("valkey.warm")
        .store(&store)
        .lease(Duration::from_millis(300))
        .run(&key("warm-up-renew"), &1, async {
            tokio::time::sleep(Duration::from_millis(150)).await; // one renewal
            Ok::<_, Error>(())
        })
        .await;
    store
}

/// Retries `charge` while the store is unavailable or the key in flight, for at most 5 s —
/// a sixth of the 30 s lease the claim holds: a key blocked for its lease never answers.
async fn charge_until_answered(
    store: &ValkeyStore,
    k: &idempotent_runtime::IdempotencyKey,
    count: &AtomicUsize,
) -> Result<String, Error> {
    let mut last = Err(Error::InFlight);
    for _ in 0..50 {
        last = charge(store, k, count).await;
        match &last {
            Err(Error::StoreUnavailable(_) | Error::InFlight) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return last,
        }
    }
    last
}

#[tokio::test]
async fn a_claim_whose_reply_is_lost_runs_once_and_does_not_block_its_key() {
    let server = RedisServer::start();
    for fault in FAULTS {
        let proxy = FaultProxy::start(server.port()).await;
        let store = store_behind(&proxy).await;
        let k = key(&format!("lost-claim-{fault:?}"));
        let count = AtomicUsize::new(0);
        proxy.on(valkey::is_claim, fault, 1);
        let first = charge(&store, &k, &count).await;
        assert!(
            matches!(first, Err(Error::StoreUnavailable(_))),
            "{fault:?}: {first:?}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "{fault:?}: ran without a claim"
        );
        assert_eq!(proxy.faults(), 1, "{fault:?}: the fault was applied");
        assert_eq!(
            charge_until_answered(&store, &k, &count)
                .await
                .ok()
                .as_deref(),
            Some("charge #1"),
            "{fault:?}: the retry runs, long before the lost claim's lease"
        );
        assert_eq!(
            charge(&store, &k, &count).await.ok().as_deref(),
            Some("charge #1"),
            "{fault:?}: replayed"
        );
        assert_eq!(count.load(Ordering::SeqCst), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn a_completion_whose_reply_is_lost_is_retried_and_stored_once() {
    let server = RedisServer::start();
    for fault in FAULTS {
        let proxy = FaultProxy::start(server.port()).await;
        let store = store_behind(&proxy).await;
        let k = key(&format!("lost-complete-{fault:?}"));
        let count = AtomicUsize::new(0);
        proxy.on(valkey::is_complete, fault, 1);
        assert_eq!(
            charge(&store, &k, &count).await.ok().as_deref(),
            Some("charge #1"),
            "{fault:?}: the caller gets the handler's result"
        );
        assert!(
            proxy.seen(valkey::is_complete) >= 2,
            "{fault:?}: the completion was sent again"
        );
        // The retry may have gone over the store's other connection while the first still
        // waits for the delayed reply: a call behind it is unavailable until then.
        assert_eq!(
            charge_until_answered(&store, &k, &count)
                .await
                .ok()
                .as_deref(),
            Some("charge #1"),
            "{fault:?}: the completion was stored: replayed"
        );
        assert_eq!(count.load(Ordering::SeqCst), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn a_renewal_whose_reply_is_lost_keeps_the_claim_exclusive() {
    let server = RedisServer::start();
    for fault in FAULTS {
        let proxy = FaultProxy::start(server.port()).await;
        let store = store_behind(&proxy).await;
        let k = key(&format!("lost-renew-{fault:?}"));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Gate::new();
        // Counted from here: the warm-up renewed too.
        let renewals_before = proxy.seen(valkey::is_renew);
        proxy.on(valkey::is_renew, fault, 1);
        let holder = tokio::spawn({
            let (store, k, runs, gate) = (store.clone(), k.clone(), runs.clone(), gate.clone());
            async move {
                Idempotent::new("valkey.renew")
                    .store(&store)
                    .lease(Duration::from_millis(900))
                    .run(&k, &1, async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.pass().await;
                        Ok::<_, Error>("held".to_owned())
                    })
                    .await
            }
        });
        gate.entered().await;
        // Bounded wait until the faulted renewal and two more went out.
        let renewed = || proxy.seen(valkey::is_renew) >= renewals_before + 3;
        for _ in 0..200 {
            if renewed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            renewed(),
            "{fault:?}: renewals went on after the faulted one"
        );
        // A 503 while the client reconnects is retried, as a client would.
        let mut intruder = Err(Error::InFlight);
        for _ in 0..20 {
            intruder = Idempotent::new("valkey.renew")
                .store(&store)
                .run(&k, &1, async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, Error>("intruder".to_owned())
                })
                .await;
            if !matches!(intruder, Err(Error::StoreUnavailable(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            matches!(intruder, Err(Error::InFlight)),
            "{fault:?}: the claim held through the lost renewal: {intruder:?}"
        );
        gate.open();
        assert_eq!(
            holder.await.expect("holder").ok().as_deref(),
            Some("held"),
            "{fault:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{fault:?}");
    }
}
