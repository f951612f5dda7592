//! [`ResponseFuture`]: what the layers of this module return.

use ::axum::http::Response;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The response future of this module's services ([`CacheStatus`](super::CacheStatus),
/// [`Conditional`](super::Conditional)): the inner service's, boxed with the layer's work
/// around it. One allocation per request.
pub struct ResponseFuture<ResBody, E>(
    Pin<Box<dyn Future<Output = Result<Response<ResBody>, E>> + Send>>,
);

impl<ResBody, E> ResponseFuture<ResBody, E> {
    pub(crate) fn new(
        future: impl Future<Output = Result<Response<ResBody>, E>> + Send + 'static,
    ) -> Self {
        ResponseFuture(Box::pin(future))
    }
}

impl<ResBody, E> Future for ResponseFuture<ResBody, E> {
    type Output = Result<Response<ResBody>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl<ResBody, E> fmt::Debug for ResponseFuture<ResBody, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
