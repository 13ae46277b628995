use idempotent_runtime::idempotent;

struct Handlers;

impl Handlers {
    #[idempotent(key = header, name = "orders.create")]
    async fn create(&self, body: String) -> String {
        body
    }
}

fn main() {}
