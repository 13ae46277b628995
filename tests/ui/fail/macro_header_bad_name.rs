use idempotent_runtime::idempotent;

#[idempotent(key = header("X Request Id"))]
async fn create(body: String) -> String {
    body
}

fn main() {}
