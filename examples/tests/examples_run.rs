//! The examples are part of the product: each is run as a user would (`cargo run --example`)
//! and its output checked.

use std::process::Command;

fn run_example(name: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("cannot start cargo for example {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn quickstart_issues_one_credential() {
    let out = run_example("quickstart");
    assert!(out.contains("first call        -> executed"), "{out}");
    assert!(out.contains("retry, same key   -> replayed"), "{out}");
    assert!(out.contains("other request     -> refused"), "{out}");
    assert!(out.contains("credentials issued: 1"), "{out}");
}

#[test]
fn payments_charges_every_order_once() {
    let out = run_example("payments");
    assert!(out.contains("reply lost, retrying"), "{out}");
    assert!(
        out.contains("5 charges at the gateway (one per order)"),
        "{out}"
    );
    assert!(
        out.contains("refused: a request with this idempotency key is still being processed"),
        "{out}"
    );
    assert!(
        out.contains("the retry after both: replayed ch_0006"),
        "{out}"
    );
    assert!(out.contains("6 orders, 6 charges at the gateway"), "{out}");
}
