//! The `payments.Payments` gRPC service, written out by hand: what `tonic-build` would generate
//! from this `.proto` (so the example needs no `protoc` and no build script):
//!
//! ```proto
//! package payments;
//! service Payments { rpc Charge(ChargeRequest) returns (ChargeReply); }
//! message ChargeRequest { string order = 1; uint64 cents = 2; }
//! message ChargeReply { string charge_id = 1; uint64 cents = 2; }
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The path of the one method.
pub(crate) const CHARGE: &str = "/payments.Payments/Charge";

/// `payments.ChargeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ChargeRequest {
    /// The order to charge for.
    #[prost(string, tag = "1")]
    pub order: String,
    /// The amount.
    #[prost(uint64, tag = "2")]
    pub cents: u64,
}

/// `payments.ChargeReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ChargeReply {
    /// The charge made.
    #[prost(string, tag = "1")]
    pub charge_id: String,
    /// The amount charged.
    #[prost(uint64, tag = "2")]
    pub cents: u64,
}

/// What a `payments.Payments` server implements.
#[tonic::async_trait]
pub(crate) trait Payments: Send + Sync + 'static {
    /// `Charge`.
    async fn charge(
        &self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeReply>, Status>;
}

/// The server: routes `Charge` to the implementation.
pub(crate) struct PaymentsServer<T>(Arc<T>);

impl<T> PaymentsServer<T> {
    /// A server of `payments`.
    pub(crate) fn new(payments: T) -> Self {
        Self(Arc::new(payments))
    }
}

impl<T> Clone for PaymentsServer<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> NamedService for PaymentsServer<T> {
    const NAME: &'static str = "payments.Payments";
}

struct Charge<T>(Arc<T>);

impl<T: Payments> UnaryService<ChargeRequest> for Charge<T> {
    type Response = ChargeReply;
    type Future = BoxFuture<Response<ChargeReply>, Status>;

    fn call(&mut self, request: Request<ChargeRequest>) -> Self::Future {
        let payments = self.0.clone();
        Box::pin(async move { payments.charge(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for PaymentsServer<T>
where
    T: Payments,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let payments = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != CHARGE {
                return Ok(Status::unimplemented(request.uri().path().to_owned()).into_http());
            }
            let mut grpc = Grpc::new(ProstCodec::<ChargeReply, ChargeRequest>::default());
            Ok(grpc.unary(Charge(payments), request).await)
        })
    }
}

/// A client of `payments.Payments` (the example's test calls the server with it).
#[allow(dead_code)]
#[derive(Clone)]
pub(crate) struct PaymentsClient(tonic::client::Grpc<Channel>);

#[allow(dead_code)]
impl PaymentsClient {
    /// Connects to `url` (`http://host:port`).
    ///
    /// # Errors
    /// The URL is invalid or the server cannot be reached.
    pub(crate) async fn connect(url: String) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url)?.connect().await?;
        Ok(Self(tonic::client::Grpc::new(channel)))
    }

    /// Calls `Charge`.
    ///
    /// # Errors
    /// The call's status when it is not `OK`.
    pub(crate) async fn charge(
        &mut self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeReply>, Status> {
        self.0
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        let path = http::uri::PathAndQuery::from_static(CHARGE);
        let codec = ProstCodec::<ChargeRequest, ChargeReply>::default();
        self.0.unary(request, path, codec).await
    }
}
