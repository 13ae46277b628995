//! One process of the multi-process storm (`tests/valkey_storm.rs`): sends its share of
//! `keys × duplicates` requests through `ValkeyStore` with 64 tasks, appends a ledger line for
//! every side effect it runs, and prints every answer it gets.
//!
//! `storm_worker URL WORKER WORKERS KEYS DUPLICATES LEDGER [LEASE_MS [HOLD_MS]]`: with
//! `HOLD_MS`, each handler stays that long after its ledger line (a window to be killed in).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use idempotent_runtime::{Concurrency, Error, IdempotencyKey, Idempotent, ValkeyStore};

const TASKS: usize = 64;

fn arg(args: &[String], i: usize, name: &str) -> Result<String, String> {
    args.get(i)
        .cloned()
        .ok_or_else(|| format!("missing argument {name}"))
}

fn number(args: &[String], i: usize, name: &str) -> Result<usize, String> {
    arg(args, i, name)?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, 1, "URL")?;
    let worker = number(&args, 2, "WORKER")?;
    let workers = number(&args, 3, "WORKERS")?;
    let keys = number(&args, 4, "KEYS")?;
    let duplicates = number(&args, 5, "DUPLICATES")?;
    let ledger = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(arg(&args, 6, "LEDGER")?)
        .map_err(|e| format!("ledger: {e}"))?;
    let ledger = Arc::new(Mutex::new(ledger));
    let optional = |i: usize, name: &str, default: u64| -> Result<u64, String> {
        args.get(i).map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("{name}: {e}"))
        })
    };
    let lease = Duration::from_millis(optional(7, "LEASE_MS", 30_000)?);
    let hold = Duration::from_millis(optional(8, "HOLD_MS", 0)?);
    let store = ValkeyStore::builder()
        .url(url)
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| e.to_string())?;

    // This worker's share of the requests, interleaved so duplicates of one key meet across
    // processes and tasks at about the same time.
    let requests: Vec<usize> = (0..keys * duplicates)
        .filter(|i| i % workers == worker)
        .map(|i| (i / duplicates + worker * 7) % keys)
        .collect();
    let requests = Arc::new(requests);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let (store, requests, ledger) = (store.clone(), requests.clone(), ledger.clone());
        handles.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for (n, &k) in requests.iter().enumerate().skip(task).step_by(TASKS) {
                let key =
                    IdempotencyKey::new(&format!("storm-key-{k}")).map_err(|e| e.to_string())?;
                let ledger = ledger.clone();
                let result = Idempotent::new("storm.charge")
                    .store(&store)
                    .concurrency(Concurrency::Wait(Duration::from_secs(20)))
                    .lease(lease)
                    .run(&key, &k, async move {
                        let effect = format!("w{worker}-t{task}-n{n}");
                        {
                            let mut file = ledger.lock().map_err(|_| Error::HandlerPanicked)?;
                            file.write_all(format!("{k} {effect}\n").as_bytes())
                                .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
                        }
                        if !hold.is_zero() {
                            tokio::time::sleep(hold).await;
                        }
                        Ok::<_, Error>(effect)
                    })
                    .await;
                answers.push(match result {
                    Ok(effect) => format!("ok {k} {effect}"),
                    Err(e) => format!("err {k} {e}"),
                });
            }
            Ok::<_, String>(answers)
        }));
    }
    let mut out = std::io::stdout().lock();
    for handle in handles {
        let answers = handle.await.map_err(|e| e.to_string())??;
        for line in answers {
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
