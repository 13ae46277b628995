use idempotent_runtime::idempotent;

#[derive(Clone)]
struct AppState {
    database_url: String,
}

#[idempotent(key = key, store = state.database_url, skip(state))]
async fn charge(state: AppState, key: &str) -> Result<u32, idempotent_runtime::Error> {
    let _ = (state, key);
    Ok(1)
}

fn main() {}
