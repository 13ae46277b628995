//! The multi-process storm: 4 OS processes × 64 tasks send 1,000 keys × 10 duplicates through
//! one `redis-server`; the ledger the processes append to shows exactly 1,000 side effects,
//! and every answer for a key is that key's one result.

use std::collections::HashMap;
use std::process::Command;

use idempotent_tests::redis_server::RedisServer;

const WORKERS: usize = 4;
const KEYS: usize = 1_000;
const DUPLICATES: usize = 10;

#[test]
fn four_processes_run_each_key_exactly_once() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("idempotent-storm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("ledger dir");
    let ledger = dir.join("ledger.txt");
    let _ = std::fs::remove_file(&ledger);

    let children: Vec<_> = (0..WORKERS)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_storm_worker"))
                .arg(server.url())
                .args([w, WORKERS, KEYS, DUPLICATES].map(|n| n.to_string()))
                .arg(&ledger)
                .output()
        })
        .map(|spawned| std::thread::spawn(move || spawned))
        .collect();
    // `output()` above runs each process to completion on its own thread: all four at once.
    let outputs: Vec<_> = children
        .into_iter()
        .map(|h| h.join().expect("thread").expect("run storm_worker"))
        .collect();

    let mut answers: HashMap<usize, Vec<String>> = HashMap::new();
    for output in &outputs {
        assert!(
            output.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(kind), Some(k), Some(rest)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("malformed answer {line:?}");
            };
            assert_eq!(kind, "ok", "request failed: {line}");
            answers
                .entry(k.parse().expect("key"))
                .or_default()
                .push(rest.to_owned());
        }
    }

    let text = std::fs::read_to_string(&ledger).expect("read ledger");
    let mut effects: HashMap<usize, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let (k, effect) = line.split_once(' ').expect("ledger line");
        effects
            .entry(k.parse().expect("key"))
            .or_default()
            .push(effect.to_owned());
    }
    let total: usize = effects.values().map(Vec::len).sum();
    assert_eq!(total, KEYS, "side effects in the ledger");
    assert_eq!(effects.len(), KEYS, "distinct keys executed");
    assert!(effects.values().all(|e| e.len() == 1), "a key ran twice");

    assert_eq!(answers.len(), KEYS);
    for (k, got) in &answers {
        assert_eq!(got.len(), DUPLICATES, "answers for key {k}");
        let effect = &effects[k][0];
        assert!(
            got.iter().all(|g| g == effect),
            "key {k}: answers {got:?}, ran {effect}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
