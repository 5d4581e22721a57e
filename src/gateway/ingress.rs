//! The request-body read deadline every route gets: a client has a bounded time, from the end of
//! its headers, to send its whole body, so a slow-body client cannot hold a connection, a task
//! (and, on `/v1`, a concurrency slot) for ever. It lives with the gateway because the gateway
//! answers a late body in each protocol's error shape ([`is_body_timeout`]); other routes get a
//! JSON 408 from the middleware. It counts time, never bytes: sizes are the handlers' limits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// The error a body past its deadline yields to whoever reads it.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?}")]
pub struct BodyReadTimeout(Duration);

/// True when `error` (or what caused it) is a body read past its deadline.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(err) = source {
        if err.is::<BodyReadTimeout>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Middleware: gives the request's body a deadline of `timeout` from now. When the deadline
/// cut the body, the answer is a 408 (whatever the handler made of the read error) and the
/// connection is closed, since the rest of the body may still be on its way.
pub async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            expired: expired.clone(),
        })
    });
    let mut response = next.run(request).await;
    if expired.load(Ordering::Acquire) {
        if response.status() != StatusCode::REQUEST_TIMEOUT {
            let body = serde_json::json!({ "error": {
                "message": "The request body was not received in time.",
                "type": "invalid_request_error", "param": null, "code": "request_timeout" } });
            response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
        }
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.expired.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        // What has arrived is taken first: a body complete by the deadline is never cut.
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_at_the_deadline_and_a_prompt_one_is_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let stalled = Body::from_stream(tokio_stream_from(rx));
        tx.send(Ok(Bytes::from_static(b"0123456789"))).await.unwrap();
        let expired = Arc::new(AtomicBool::new(false));
        let body = Body::new(DeadlineBody {
            inner: stalled,
            deadline: Box::pin(tokio::time::sleep(Duration::from_millis(100))),
            timeout: Duration::from_millis(100),
            expired: expired.clone(),
        });
        let err = axum::body::to_bytes(body, 1 << 20).await.unwrap_err();
        assert!(is_body_timeout(&err), "{err}");
        assert!(expired.load(Ordering::Acquire));
        drop(tx);

        let prompt = Body::new(DeadlineBody {
            inner: Body::from("complete"),
            deadline: Box::pin(tokio::time::sleep(Duration::from_millis(100))),
            timeout: Duration::from_millis(100),
            expired: Arc::new(AtomicBool::new(false)),
        });
        assert_eq!(axum::body::to_bytes(prompt, 1 << 20).await.unwrap(), "complete");
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
