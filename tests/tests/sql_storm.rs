//! The transactional storm: 4 OS processes × 32 tasks send 1,000 keys × 10 duplicates through
//! one private PostgreSQL server in transactional mode; each execution inserts its side effect
//! as a row in the handler's transaction. Exactly 1,000 rows, one per key, and every answer
//! for a key is that key's one row.

use std::collections::HashMap;
use std::process::Command;

use idempotent_runtime::PostgresStore;
use idempotent_tests::postgres_server::PostgresServer;

const WORKERS: usize = 4;
const KEYS: usize = 1_000;
const DUPLICATES: usize = 10;

#[test]
fn four_processes_commit_each_key_exactly_once() {
    let server = PostgresServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pool = rt
        .block_on(sqlx::PgPool::connect(&server.url()))
        .expect("connect");
    rt.block_on(async {
        sqlx::query("CREATE TABLE effects (k BIGINT NOT NULL, effect TEXT NOT NULL)")
            .execute(&pool)
            .await
            .expect("effects");
        PostgresStore::new(pool.clone())
            .migrate()
            .await
            .expect("migrate");
    });
    let children: Vec<_> = (0..WORKERS)
        .map(|w| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_sql_storm_worker"));
            command
                .arg(server.url())
                .args([w, WORKERS, KEYS, DUPLICATES].map(|n| n.to_string()));
            std::thread::spawn(move || command.output())
        })
        .collect();
    let mut answers: HashMap<i64, Vec<String>> = HashMap::new();
    for child in children {
        let output = child.join().expect("thread").expect("run sql_storm_worker");
        assert!(
            output.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some("ok"), Some(k), Some(effect)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("request failed: {line:?}");
            };
            answers
                .entry(k.parse().expect("key"))
                .or_default()
                .push(effect.to_owned());
        }
    }
    let rows: Vec<(i64, String)> = rt
        .block_on(sqlx::query_as("SELECT k, effect FROM effects").fetch_all(&pool))
        .expect("rows");
    assert_eq!(rows.len(), KEYS, "rows committed");
    let effects: HashMap<i64, String> = rows.into_iter().collect();
    assert_eq!(effects.len(), KEYS, "one row per key");
    assert_eq!(answers.len(), KEYS);
    for (k, got) in &answers {
        assert_eq!(got.len(), DUPLICATES, "answers for key {k}");
        assert!(
            got.iter().all(|g| g == &effects[k]),
            "key {k}: answers {got:?}, committed {}",
            effects[k]
        );
    }
}
