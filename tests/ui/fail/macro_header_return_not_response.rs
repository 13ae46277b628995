use idempotent_runtime::idempotent;

struct Receipt;

#[idempotent(key = header)]
async fn create(body: String) -> Receipt {
    let _ = body;
    Receipt
}

fn main() {}
