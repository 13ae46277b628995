//! A gRPC service whose unary `payments.Payments/Charge` runs **at most once per key**: the
//! key comes from the `idempotency-key` request metadata, and a retrying client gets the first
//! call's reply — the same message, status and trailers, plus `idempotent-replayed: true` in
//! the response metadata.
//!
//! `IdempotencyLayer` wraps tonic's routes (`Server::builder().layer(…)`) like any tower
//! service over `http` types. To a gRPC request (`content-type: application/grpc`) its
//! refusals are gRPC statuses, with a `google.rpc.ErrorInfo` (domain `idempotent`, reason
//! `MISSING_KEY`, `KEY_REUSED`, `IN_FLIGHT`, …) in `grpc-status-details-bin`:
//! - no key or an invalid one: `INVALID_ARGUMENT`;
//! - the key reused with another request: `FAILED_PRECONDITION` (do not retry with this key);
//! - another call with the key still running: `ABORTED`, with a `google.rpc.RetryInfo` and
//!   `grpc-retry-pushback-ms` saying when to retry;
//! - the store unavailable: `UNAVAILABLE`, with the same retry information.
//!
//! Only `OK` replies are stored by default: another status may be tonic's own refusal of a
//! request it could not decode, and the corrected call must run. This example also keeps
//! `FAILED_PRECONDITION` ("card declined", returned after the decline was recorded), with
//! `store_grpc_status`.
//!
//! `GRPC_ADDR` (default `127.0.0.1:50051`); `IDEMPOTENT_REDIS_URL` to keep the records in
//! Valkey/Redis. Prints the address it listens on, then one line per charge. Try it with
//! `grpcurl -plaintext -H 'idempotency-key: k-1' -d '{"order":"o-1","cents":500}' …` (give it
//! the `.proto` in `proto.rs`), or with the client in `proto.rs`.

mod proto;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use idempotent_runtime::service::IdempotencyLayer;
use idempotent_runtime::{IdempotencyStore, MemoryStore, ValkeyStore};
use proto::{ChargeReply, ChargeRequest, Payments, PaymentsServer};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};

/// The largest charge a card takes; above it, a recorded decline.
const CARD_LIMIT: u64 = 100_000;

/// Charges, numbered.
#[derive(Default)]
struct Billing {
    charges: AtomicU64,
}

#[tonic::async_trait]
impl Payments for Billing {
    async fn charge(
        &self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeReply>, Status> {
        let ChargeRequest { order, cents } = request.into_inner();
        let n = self.charges.fetch_add(1, Ordering::SeqCst) + 1;
        if cents > CARD_LIMIT {
            println!("declined order {order}: {cents} cents (attempt #{n})");
            return Err(Status::failed_precondition(
                "card declined: over the card's limit",
            ));
        }
        println!("charged order {order}: {cents} cents (charge #{n})");
        Ok(Response::new(ChargeReply {
            charge_id: format!("ch_{n}"),
            cents,
        }))
    }
}

/// The layer: the key from `idempotency-key`, replies kept a day, declines kept too.
fn idempotency<St: IdempotencyStore + Clone + 'static>(store: St) -> IdempotencyLayer<St> {
    IdempotencyLayer::new(store)
        .operation("payments")
        .header("idempotency-key")
        .ttl(std::time::Duration::from_hours(24))
        .store_grpc_status(|code| {
            code == Code::Ok as i32 || code == Code::FailedPrecondition as i32
        })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("GRPC_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:50051".to_owned())
        .parse()?;
    let incoming = TcpIncoming::bind(addr)?;
    println!("listening on {}", incoming.local_addr()?);
    let service = PaymentsServer::new(Billing::default());
    match std::env::var("IDEMPOTENT_REDIS_URL") {
        Ok(url) => {
            let store = ValkeyStore::connect(&url).await?;
            Server::builder()
                .layer(idempotency(store))
                .add_service(service)
                .serve_with_incoming(incoming)
                .await?;
        }
        Err(_) => {
            Server::builder()
                .layer(idempotency(MemoryStore::new()))
                .add_service(service)
                .serve_with_incoming(incoming)
                .await?;
        }
    }
    Ok(())
}
