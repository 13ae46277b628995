//! A state-machine property test: `MemoryStore` against a simple reference model, in virtual
//! time, over random sequences of claim / complete / release / renew / get / advance-clock.
//! Zombie tokens (from earlier claims) are used as often as current ones.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::{
    CachedResponse, Error, ExistingEntry, FencingToken, Fingerprint, IdempotencyEntry,
    IdempotencyKey, IdempotencyStore, InsertResult, ManualClock, MemoryStore,
};
use proptest::prelude::*;

const LEASE_MS: u64 = 100;
const TTL_MS: u64 = 300;
const KEYS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Claim {
        key: usize,
        fp: u8,
    },
    Complete {
        key: usize,
        token: usize,
        body: u8,
    },
    Release {
        key: usize,
        token: usize,
    },
    Renew {
        key: usize,
        token: usize,
        lease_ms: u64,
    },
    Get {
        key: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..KEYS, 0..2u8).prop_map(|(key, fp)| Op::Claim { key, fp }),
        3 => (0..KEYS, 0..4usize, any::<u8>()).prop_map(|(key, token, body)| Op::Complete { key, token, body }),
        1 => (0..KEYS, 0..4usize).prop_map(|(key, token)| Op::Release { key, token }),
        1 => (0..KEYS, 0..4usize, 1..200u64).prop_map(|(key, token, lease_ms)| Op::Renew { key, token, lease_ms }),
        1 => (0..KEYS).prop_map(|key| Op::Get { key }),
        2 => (0..250u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The reference: one optional record per key, plus every token ever issued for it.
#[derive(Debug, Clone)]
struct ModelRecord {
    fp: u8,
    token: FencingToken,
    expires_at: u64,
    body: Option<u8>,
}

#[derive(Default)]
struct Model {
    now: u64,
    records: HashMap<usize, ModelRecord>,
    tokens: HashMap<usize, Vec<FencingToken>>,
}

impl Model {
    fn live(&self, key: usize) -> Option<&ModelRecord> {
        self.records.get(&key).filter(|r| self.now < r.expires_at)
    }

    fn current(&mut self, key: usize, token: FencingToken) -> Option<&mut ModelRecord> {
        let now = self.now;
        self.records
            .get_mut(&key)
            .filter(|r| now < r.expires_at && r.token == token)
    }

    /// A token for `key`: one issued before (by index, so zombies are picked often) or, when
    /// none exists yet, one never issued.
    fn token(&self, key: usize, index: usize) -> FencingToken {
        match self.tokens.get(&key) {
            Some(tokens) if !tokens.is_empty() => tokens[index % tokens.len()],
            _ => FencingToken::new(1, 1),
        }
    }
}

fn key(n: usize) -> IdempotencyKey {
    IdempotencyKey::new(&format!("model-key-{n}")).expect("valid")
}

fn entry(fp: u8) -> IdempotencyEntry {
    IdempotencyEntry::new(Fingerprint::from_u128(fp.into()))
        .with_lease(Duration::from_millis(LEASE_MS))
        .with_ttl(Duration::from_millis(TTL_MS))
}

/// The store under test beside its model, stepped through the same operations.
struct Machine {
    store: MemoryStore,
    clock: Arc<ManualClock>,
    model: Model,
    /// The entry of each key's latest claim, to complete.
    entries: HashMap<usize, IdempotencyEntry>,
}

impl Machine {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let store = MemoryStore::builder()
            .shards(2)
            .clock(clock.clone())
            .build();
        Self {
            store,
            clock,
            model: Model::default(),
            entries: HashMap::new(),
        }
    }

    async fn apply(&mut self, step: usize, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Claim { key: k, fp } => self.claim(step, k, fp).await,
            Op::Complete {
                key: k,
                token,
                body,
            } => self.complete(step, k, token, body).await,
            Op::Release { key: k, token } => {
                let token = self.model.token(k, token);
                let got = self.store.release(&key(k), token).await;
                let expected = match self.model.current(k, token) {
                    Some(r) if r.body.is_none() => {
                        self.model.records.remove(&k);
                        Ok(())
                    }
                    _ => Err(()),
                };
                check(step, "release", expected, got)
            }
            Op::Renew {
                key: k,
                token,
                lease_ms,
            } => self.renew(step, k, token, lease_ms).await,
            Op::Get { key: k } => self.get(step, k).await,
            Op::Advance { ms } => {
                self.clock.advance(Duration::from_millis(ms));
                self.model.now += ms;
                Ok(())
            }
        }
    }

    async fn claim(&mut self, step: usize, k: usize, fp: u8) -> Result<(), TestCaseError> {
        let got = self.store.try_insert(&key(k), entry(fp)).await;
        match (self.model.live(k).cloned(), got) {
            (
                None,
                Ok(InsertResult::Claimed {
                    fencing_token,
                    entry: e,
                }),
            ) => {
                let previous = self.model.tokens.entry(k).or_default();
                if let Some(last) = previous.last() {
                    prop_assert!(
                        fencing_token.counter() > last.counter(),
                        "step {step}: counter went down"
                    );
                }
                previous.push(fencing_token);
                let expires_at = self.model.now + LEASE_MS;
                self.model.records.insert(
                    k,
                    ModelRecord {
                        fp,
                        token: fencing_token,
                        expires_at,
                        body: None,
                    },
                );
                self.entries.insert(k, e);
                Ok(())
            }
            (Some(r), Ok(InsertResult::Exists(existing))) => {
                prop_assert_eq!(existing.fingerprint(), Fingerprint::from_u128(r.fp.into()));
                match (r.body, existing) {
                    (None, ExistingEntry::Processing(_)) => Ok(()),
                    (Some(body), ExistingEntry::Completed(done)) => {
                        let got = done.response().map(|r| r.body().to_vec());
                        prop_assert_eq!(got, Some(vec![body]), "step {}", step);
                        Ok(())
                    }
                    (expected, got) => Err(TestCaseError::fail(format!(
                        "step {step}: model {expected:?}, store {got:?}"
                    ))),
                }
            }
            (expected, got) => Err(TestCaseError::fail(format!(
                "step {step}: model {expected:?}, store {got:?}"
            ))),
        }
    }

    async fn complete(
        &mut self,
        step: usize,
        k: usize,
        token: usize,
        body: u8,
    ) -> Result<(), TestCaseError> {
        let token = self.model.token(k, token);
        let e = self.entries.get(&k).cloned().unwrap_or_else(|| entry(0));
        let got = self
            .store
            .complete(&key(k), e.complete(CachedResponse::from(vec![body])), token)
            .await;
        let now = self.model.now;
        let expected = match self.model.current(k, token) {
            Some(r) => {
                if r.body.is_none() {
                    r.body = Some(body);
                    r.expires_at = now + TTL_MS;
                }
                Ok(())
            }
            None => Err(()),
        };
        check(step, "complete", expected, got)
    }

    async fn renew(
        &mut self,
        step: usize,
        k: usize,
        token: usize,
        lease_ms: u64,
    ) -> Result<(), TestCaseError> {
        let token = self.model.token(k, token);
        let got = self
            .store
            .renew(&key(k), token, Duration::from_millis(lease_ms))
            .await;
        let now = self.model.now;
        let expected = match self.model.current(k, token) {
            Some(r) if r.body.is_none() => {
                r.expires_at = now + lease_ms;
                Ok(())
            }
            _ => Err(()),
        };
        check(step, "renew", expected, got)
    }

    async fn get(&mut self, step: usize, k: usize) -> Result<(), TestCaseError> {
        let got = self
            .store
            .get(&key(k))
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = self.model.live(k).map(|r| r.body);
        let got = got.map(|existing| match existing {
            ExistingEntry::Processing(_) => None,
            ExistingEntry::Completed(done) => {
                done.response().and_then(|r| r.body().first().copied())
            }
        });
        prop_assert_eq!(expected, got, "step {}: get", step);
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut machine = Machine::new();
        for (step, op) in ops.iter().enumerate() {
            machine.apply(step, op).await?;
        }
        Ok(())
    })
}

fn check(
    step: usize,
    what: &str,
    expected: Result<(), ()>,
    got: Result<(), Error>,
) -> Result<(), TestCaseError> {
    match (expected, got) {
        (Ok(()), Ok(())) | (Err(()), Err(Error::StaleFencingToken)) => Ok(()),
        (expected, got) => Err(TestCaseError::fail(format!(
            "step {step}: {what}: model {expected:?}, store {got:?}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}
