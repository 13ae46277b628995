//! [`LayerBody`]: the body [`IdempotencyLayer`](super::IdempotencyLayer) hands on — one it
//! buffered (data, then trailers) or one it passes through untouched — and [`read_whole`],
//! how a body is buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use pin_project_lite::pin_project;

/// A boxed error, as tower and hyper pass them around.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pin_project! {
    /// The body of a request the layer passes to the inner service, and of a response it
    /// returns: either in memory (a protected request's body, read for the fingerprint; a
    /// captured or replayed response, with its trailers) or the original body `B`, streamed
    /// through untouched (a `GET`, a request without a key under `optional_key`).
    ///
    /// Any service generic over its request body takes it (an axum `Router`, tonic's routes,
    /// a hyper service); axum responds with it directly (`Response<LayerBody<B>>` is
    /// `IntoResponse`).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::BodyExt;
    /// use idempotent_runtime::service::LayerBody;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let body = LayerBody::<http_body_util::Empty<Bytes>>::buffered(Bytes::from("paid"), None);
    /// let collected = body.collect().await.expect("in memory");
    /// assert_eq!(collected.to_bytes(), "paid");
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct LayerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProjection]
    #[derive(Debug)]
    enum Kind<B> {
        Buffered { data: Option<Bytes>, trailers: Option<HeaderMap> },
        Passed { #[pin] body: B },
    }
}

impl<B> LayerBody<B> {
    /// A body in memory: `data` (none when empty), then `trailers` if any.
    #[must_use]
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        let data = Some(data).filter(|d| !d.is_empty());
        Self {
            kind: Kind::Buffered { data, trailers },
        }
    }

    /// `body`, streamed through untouched.
    #[must_use]
    pub fn passed(body: B) -> Self {
        Self {
            kind: Kind::Passed { body },
        }
    }
}

impl<B> Body for LayerBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProjection::Buffered { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            KindProjection::Passed { body } => body.poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Passed { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Passed { body } => body.size_hint(),
        }
    }
}

/// Reads `body` whole: its data — a single chunk as it came, more joined into one buffer — and
/// its trailers (several frames of them merged). What `http_body_util`'s `collect` and
/// `to_bytes` give, without the queue `collect` allocates for the chunks: a body is one chunk
/// more often than not.
///
/// # Errors
/// The body's own error, at the frame that failed.
pub(crate) async fn read_whole<B: Body>(body: B) -> Result<(Bytes, Option<HeaderMap>), B::Error> {
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        let data = match frame?.into_data() {
            // `Bytes` hands itself over; another buffer is copied once.
            Ok(mut data) => data.copy_to_bytes(data.remaining()),
            Err(frame) => {
                if let Ok(more) = frame.into_trailers() {
                    match &mut trailers {
                        Some(trailers) => trailers.extend(more),
                        None => trailers = Some(more),
                    }
                }
                continue;
            }
        };
        if data.is_empty() {
            continue;
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut both = BytesMut::with_capacity(first.len() + data.len());
                both.extend_from_slice(&first);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok((joined.map_or(first, BytesMut::freeze), trailers))
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    #[tokio::test]
    async fn a_buffered_body_yields_its_data_then_its_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("value"));
        let body = LayerBody::<Empty<Bytes>>::buffered(Bytes::from("abc"), Some(trailers));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert!(!body.is_end_stream());
        let collected = body.collect().await.expect("in memory");
        assert_eq!(
            collected.trailers().map(|t| &t["grpc-status"]),
            Some(&"0".parse().expect("value"))
        );
        assert_eq!(collected.to_bytes(), "abc");
        let empty = LayerBody::<Empty<Bytes>>::buffered(Bytes::new(), None);
        assert!(
            empty.is_end_stream(),
            "no data and no trailers: nothing to send"
        );
    }

    #[tokio::test]
    async fn a_passed_body_streams_the_original() {
        let body = LayerBody::passed(Full::new(Bytes::from("through")));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert_eq!(body.collect().await.expect("full").to_bytes(), "through");
    }

    /// A body of these frames, in order.
    struct Frames<E>(std::collections::VecDeque<Result<Frame<Bytes>, E>>);

    impl<E: Unpin> Body for Frames<E> {
        type Data = Bytes;
        type Error = E;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    /// One chunk comes back as it was sent (no copy); several are joined in order, empty ones
    /// skipped; trailer frames are merged; a body that fails mid-way is its error.
    #[tokio::test]
    async fn a_body_is_read_whole_with_its_trailers() {
        let chunk = Bytes::from("one chunk");
        let (data, trailers) = read_whole(Full::new(chunk.clone())).await.expect("full");
        assert_eq!(
            data.as_ptr(),
            chunk.as_ptr(),
            "a single chunk is not copied"
        );
        assert!(trailers.is_none());

        let mut first = HeaderMap::new();
        first.insert("grpc-status", "0".parse().expect("value"));
        let mut second = HeaderMap::new();
        second.insert("grpc-message", "ok".parse().expect("value"));
        let frames: Frames<std::convert::Infallible> = Frames(
            [
                Frame::data(Bytes::from("ab")),
                Frame::data(Bytes::new()),
                Frame::data(Bytes::from("c")),
                Frame::trailers(first),
                Frame::data(Bytes::from("d")),
                Frame::trailers(second),
            ]
            .into_iter()
            .map(Ok)
            .collect(),
        );
        let (data, trailers) = read_whole(frames).await.expect("in memory");
        assert_eq!(data, "abcd");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");

        let broken = Frames([Ok(Frame::data(Bytes::from("a"))), Err("reset")].into());
        assert_eq!(read_whole(broken).await.err(), Some("reset"));
        let (empty, none) = read_whole(Empty::<Bytes>::new()).await.expect("empty");
        assert!(empty.is_empty() && none.is_none());
    }
}
