//! The `grpc_payments` example, and its service behind `IdempotencyLayer` in this process,
//! over a real socket with a real tonic client: a retry gets the first reply (message, status,
//! trailers) marked replayed; refusals are gRPC statuses with `ErrorInfo` (and `RetryInfo`
//! where waiting helps); statuses the layer does not store free the key.

#[path = "../examples/grpc_payments/proto.rs"]
mod proto;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use idempotent_runtime::MemoryStore;
use idempotent_runtime::service::IdempotencyLayer;
use idempotent_tests::gate::Gate;
use prost::Message;
use proto::{ChargeReply, ChargeRequest, Payments, PaymentsClient, PaymentsServer};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt;
use tower_service::Service;

fn charge(key: Option<&str>, order: &str, cents: u64) -> Request<ChargeRequest> {
    let mut request = Request::new(ChargeRequest {
        order: order.to_owned(),
        cents,
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("idempotency-key", key.parse().expect("ascii key"));
    }
    request
}

fn replayed<T>(response: &Response<T>) -> bool {
    response
        .metadata()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// The `ErrorInfo` reason of one of the layer's refusals (domain `idempotent`).
fn reason(status: &Status) -> String {
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(info.domain, "idempotent");
    info.reason
}

/// The example, running on a free port; killed on drop.
struct Example {
    child: Child,
    addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Example {
    fn start() -> Self {
        let mut child = Command::new(support::example_binary("grpc_payments"))
            .env("GRPC_ADDR", "127.0.0.1:0")
            .env_remove("IDEMPOTENT_REDIS_URL")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start grpc_payments");
        let (send, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        let first = lines
            .recv_timeout(Duration::from_mins(1))
            .expect("the example says where it listens");
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Self { child, addr, lines }
    }

    fn said(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_example_replays_charges_and_declines_and_refuses_misuse() {
    let example = Example::start();
    let mut client = PaymentsClient::connect(format!("http://{}", example.addr))
        .await
        .expect("connect");

    let first = client
        .charge(charge(Some("k-1"), "o-1", 500))
        .await
        .expect("charged");
    let retry = client
        .charge(charge(Some("k-1"), "o-1", 500))
        .await
        .expect("replayed");
    assert_eq!(first.get_ref(), retry.get_ref(), "the same reply");
    assert_eq!(first.get_ref().charge_id, "ch_1");
    assert!(!replayed(&first) && replayed(&retry));

    // A decline the example keeps (`store_grpc_status`): the same status and message.
    let declined = client
        .charge(charge(Some("k-2"), "o-2", 200_000))
        .await
        .expect_err("declined");
    let again = client
        .charge(charge(Some("k-2"), "o-2", 200_000))
        .await
        .expect_err("declined");
    assert_eq!(
        (declined.code(), again.code()),
        (Code::FailedPrecondition, Code::FailedPrecondition)
    );
    assert_eq!(declined.message(), again.message());
    assert_eq!(again.message(), "card declined: over the card's limit");
    assert!(
        again
            .metadata()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    );

    let reused = client
        .charge(charge(Some("k-1"), "o-1", 900))
        .await
        .expect_err("reused");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&reused), "KEY_REUSED");
    let missing = client
        .charge(charge(None, "o-3", 500))
        .await
        .expect_err("no key");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(reason(&missing), "MISSING_KEY");
    let invalid = client
        .charge(charge(Some(&"k".repeat(300)), "o-3", 500))
        .await
        .expect_err("bad key");
    assert_eq!(
        (invalid.code(), reason(&invalid)),
        (Code::InvalidArgument, "INVALID_KEY".to_owned())
    );

    let lines = example.said();
    let ran = |what: &str| lines.iter().filter(|l| l.starts_with(what)).count();
    assert_eq!(
        (ran("charged order o-1"), ran("declined order o-2")),
        (1, 1),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "nothing else ran: {lines:?}");
}

/// A `Payments` whose charges wait at a gate, and may fail with a chosen status.
#[derive(Default)]
struct Held {
    gate: Option<Arc<Gate>>,
    fail_with: Option<Code>,
    runs: AtomicU64,
}

#[tonic::async_trait]
impl Payments for Arc<Held> {
    async fn charge(
        &self,
        request: Request<ChargeRequest>,
    ) -> Result<Response<ChargeReply>, Status> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        if let Some(code) = self.fail_with {
            return Err(Status::new(code, format!("refused #{n}")));
        }
        let cents = request.into_inner().cents;
        Ok(Response::new(ChargeReply {
            charge_id: format!("ch_{n}"),
            cents,
        }))
    }
}

/// Serves `payments` behind `layer` on a free port, in this process.
fn serve(payments: Arc<Held>, layer: IdempotencyLayer<MemoryStore>) -> String {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = incoming.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(PaymentsServer::new(payments))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

#[tokio::test]
async fn a_call_in_flight_is_aborted_with_retry_info_then_replayed() {
    let gate = Arc::new(Gate::new());
    let held = Arc::new(Held {
        gate: Some(gate.clone()),
        ..Held::default()
    });
    let url = serve(held.clone(), IdempotencyLayer::new(MemoryStore::new()));
    let client = PaymentsClient::connect(url).await.expect("connect");

    let first = tokio::spawn({
        let mut client = client.clone();
        async move { client.charge(charge(Some("k"), "o", 100)).await }
    });
    gate.entered().await;
    let in_flight = client
        .clone()
        .charge(charge(Some("k"), "o", 100))
        .await
        .expect_err("in flight");
    assert_eq!(in_flight.code(), Code::Aborted);
    assert_eq!(reason(&in_flight), "IN_FLIGHT");
    let retry = in_flight.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
    assert_eq!(
        in_flight
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|v| v.to_str().expect("ascii")),
        Some("1000")
    );

    gate.open();
    let first = first.await.expect("task").expect("charged");
    let replay = client
        .clone()
        .charge(charge(Some("k"), "o", 100))
        .await
        .expect("replayed");
    assert_eq!(first.get_ref(), replay.get_ref());
    assert!(replayed(&replay));
    assert_eq!(held.runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_status_the_layer_does_not_store_frees_the_key() {
    let held = Arc::new(Held {
        fail_with: Some(Code::Unavailable),
        ..Held::default()
    });
    let url = serve(held.clone(), IdempotencyLayer::new(MemoryStore::new()));
    let mut client = PaymentsClient::connect(url).await.expect("connect");
    for n in 1..=2 {
        let refused = client
            .charge(charge(Some("k"), "o", 100))
            .await
            .expect_err("refused");
        assert_eq!(
            (refused.code(), refused.message()),
            (Code::Unavailable, format!("refused #{n}").as_str())
        );
        assert!(
            refused.metadata().get("idempotent-replayed").is_none(),
            "ran again, not replayed"
        );
    }
    assert_eq!(held.runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_over_the_body_limit_is_resource_exhausted() {
    let held = Arc::new(Held::default());
    let layer = IdempotencyLayer::new(MemoryStore::new()).max_request_body(32);
    let url = serve(held.clone(), layer);
    let mut client = PaymentsClient::connect(url).await.expect("connect");
    let refused = client
        .charge(charge(Some("k"), &"o".repeat(64), 1))
        .await
        .expect_err("too large");
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::ResourceExhausted, "BODY_TOO_LARGE".to_owned())
    );
    assert_eq!(held.runs.load(Ordering::SeqCst), 0);
}

/// One raw gRPC exchange through tonic's channel: the response's headers, data and trailers.
async fn raw_charge(
    channel: &mut tonic::transport::Channel,
    key: &str,
) -> (http::HeaderMap, Bytes, Option<http::HeaderMap>) {
    let message = ChargeRequest {
        order: "o".to_owned(),
        cents: 7,
    }
    .encode_to_vec();
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(message.len()).expect("small"));
    frame.put_slice(&message);
    let request = http::Request::post(format!("http://localhost{}", proto::CHARGE))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("idempotency-key", key)
        .body(tonic::body::Body::new(http_body_util::Full::new(
            frame.freeze(),
        )))
        .expect("request");
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .expect("ready");
    let response = channel.call(request).await.expect("answered");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned();
    (parts.headers, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn the_replay_has_the_first_answers_data_and_trailers() {
    let held = Arc::new(Held::default());
    let url = serve(held.clone(), IdempotencyLayer::new(MemoryStore::new()));
    let mut channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let (first_headers, first_data, first_trailers) = raw_charge(&mut channel, "k").await;
    let (replay_headers, replay_data, replay_trailers) = raw_charge(&mut channel, "k").await;
    let status =
        |t: &Option<http::HeaderMap>| t.as_ref().and_then(|t| t.get("grpc-status")).cloned();
    assert_eq!(
        status(&first_trailers),
        Some(http::HeaderValue::from_static("0")),
        "OK in the trailers"
    );
    assert_eq!(first_trailers, replay_trailers, "the trailers are replayed");
    assert_eq!(
        first_data, replay_data,
        "the framed reply is replayed byte for byte"
    );
    let reply = ChargeReply::decode(&replay_data[5..]).expect("a ChargeReply");
    assert_eq!(reply.charge_id, "ch_1");
    assert_eq!(
        first_headers.get("content-type"),
        replay_headers.get("content-type")
    );
    assert!(replay_headers.contains_key("idempotent-replayed"));
    assert_eq!(held.runs.load(Ordering::SeqCst), 1);
}
