//! One process of the transactional storm (`tests/sql_storm.rs`): sends its share of
//! `keys × duplicates` requests through `PostgresStore` in transactional mode with 32 tasks;
//! each execution inserts its side effect as a row on the handler's transaction. Prints every
//! answer it gets.
//!
//! `sql_storm_worker URL WORKER WORKERS KEYS DUPLICATES`

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::{Concurrency, Error, IdempotencyKey, Idempotent, PostgresStore};

const TASKS: usize = 32;

fn number(args: &[String], i: usize, name: &str) -> Result<usize, String> {
    args.get(i)
        .ok_or_else(|| format!("missing argument {name}"))?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).ok_or("missing argument URL")?.clone();
    let worker = number(&args, 2, "WORKER")?;
    let workers = number(&args, 3, "WORKERS")?;
    let keys = number(&args, 4, "KEYS")?;
    let duplicates = number(&args, 5, "DUPLICATES")?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(12)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    let store = PostgresStore::new(pool).timeout(Duration::from_secs(30));
    // This worker's share, interleaved so duplicates of one key meet across processes.
    let requests: Arc<Vec<usize>> = Arc::new(
        (0..keys * duplicates)
            .filter(|i| i % workers == worker)
            .map(|i| (i / duplicates + worker * 7) % keys)
            .collect(),
    );
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let (store, requests) = (store.clone(), requests.clone());
        handles.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for (n, &k) in requests.iter().enumerate().skip(task).step_by(TASKS) {
                let key = IdempotencyKey::new(&format!("storm-{k}")).map_err(|e| e.to_string())?;
                let effect = format!("w{worker}-t{task}-n{n}");
                let result = Idempotent::new("storm.insert")
                    .concurrency(Concurrency::Wait(Duration::from_mins(1)))
                    .run_in_transaction(&store, &key, &k, |tx| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO effects (k, effect) VALUES ($1, $2)")
                                .bind(i64::try_from(k).unwrap_or(-1))
                                .bind(&effect)
                                .execute(&mut **tx)
                                .await
                                .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
                            Ok::<_, Error>(effect.clone())
                        })
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
        for line in handle.await.map_err(|e| e.to_string())?? {
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
