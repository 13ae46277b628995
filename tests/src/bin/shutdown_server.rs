//! A service that shuts down gracefully (`tests/graceful_shutdown.rs`): an `#[idempotent]`
//! handler on a SQLite file that survives restarts, slow enough to be cut off; on SIGTERM it
//! stops accepting, then waits for detached handlers with `service::shutdown` (unless told
//! `no-drain`), and exits.
//!
//! `shutdown_server DB_PATH PORT_FILE LEDGER HOLD_MS [no-drain]`

use std::io::Write;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use idempotent_runtime::{SqliteStore, idempotent};

#[derive(Clone)]
struct App {
    store: SqliteStore,
    ledger: String,
    hold: Duration,
}

#[idempotent(key = header, store = state.store, name = "shutdown.slow")]
async fn slow(State(state): State<App>) -> String {
    // The side effect first, then the slow part: a cut-off request has had its effect.
    let lines = std::fs::read_to_string(&state.ledger).map_or(0, |t| t.lines().count());
    if let Ok(mut ledger) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&state.ledger)
    {
        let _ = writeln!(ledger, "ran");
    }
    tokio::time::sleep(state.hold).await;
    format!("done #{}", lines + 1)
}

fn arg(args: &[String], i: usize, name: &str) -> Result<String, String> {
    args.get(i)
        .cloned()
        .ok_or_else(|| format!("missing argument {name}"))
}

#[tokio::main(worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, 1, "DB_PATH")?;
    let port_file = arg(&args, 2, "PORT_FILE")?;
    let ledger = arg(&args, 3, "LEDGER")?;
    let hold: u64 = arg(&args, 4, "HOLD_MS")?
        .parse()
        .map_err(|e| format!("HOLD_MS: {e}"))?;
    let drain = args.get(5).is_none_or(|a| a != "no-drain");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .map_err(|e| e.to_string())?;
    let store = SqliteStore::new(pool);
    store.migrate().await.map_err(|e| e.to_string())?;
    let app = App {
        store,
        ledger,
        hold: Duration::from_millis(hold),
    };
    let router = Router::new().route("/slow", post(slow)).with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    std::fs::write(&port_file, port.to_string()).map_err(|e| e.to_string())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            terminate.recv().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    if drain {
        let drained = idempotent_runtime::service::shutdown(Duration::from_secs(20)).await;
        println!("drained: {drained}");
    } else {
        println!("exiting without draining");
    }
    Ok(())
}
