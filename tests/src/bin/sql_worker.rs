//! A process that claims one key on PostgreSQL in transactional mode, inserts a row in the
//! handler's transaction, prints `inserted`, and then hangs — for `tests/sql_store.rs` to
//! SIGKILL it mid-handler, after its insert and before its commit.
//!
//! `sql_worker URL KEY LEASE_MS`

use std::time::Duration;

use idempotent_runtime::{Error, IdempotencyKey, Idempotent, PostgresStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(key), Some(lease)) = (args.get(1), args.get(2), args.get(3)) else {
        return Err("usage: sql_worker URL KEY LEASE_MS".to_owned());
    };
    let lease: u64 = lease.parse().map_err(|e| format!("LEASE_MS: {e}"))?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let store = PostgresStore::new(pool);
    let key = IdempotencyKey::new(key).map_err(|e| e.to_string())?;
    let result: Result<(), Error> = Idempotent::new("users.create")
        .lease(Duration::from_millis(lease))
        .run_in_transaction(&store, &key, &"ada", |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO users (name) VALUES ('ada')")
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| Error::StoreUnavailable(Box::new(e)))?;
                println!("inserted");
                std::future::pending::<()>().await;
                Ok(())
            })
        })
        .await;
    Err(format!("the handler returned: {result:?}"))
}
