//! [`CacheStatusLayer`]: the `X-Cache` response header from the cached calls a request made.

use super::ResponseFuture;
use crate::{memo, with_outcome};
use ::axum::http::header::Entry;
use ::axum::http::{HeaderName, HeaderValue, Request, Response};
use std::task::{Context, Poll};

/// A tower layer that reports, on each response, what the cached calls made while handling
/// the request did: `X-Cache: HIT`, `MISS`, `REFRESH`, `COALESCED` or `BYPASS`, the
/// [`Outcome::as_str`](crate::Outcome::as_str) of the outcome (so outcomes added later
/// appear without a change here).
///
/// The whole request, extractors and handler, runs inside [`with_outcome`], so the header
/// needs no code in handlers; and, unless turned off with [`memo(false)`](Self::memo),
/// inside a [`memo`] scope: a key the request reads twice is read from Redis once, and both
/// reads return the same value. Guarantees and limits:
///
/// - **Several cached calls:** the header reports the last one that completed (for a
///   cached function calling another, the outermost), as [`with_outcome`] does.
/// - **No cached call:** no header. Nor when the inner service fails (its error is passed
///   through unchanged).
/// - **What is seen:** cached calls polled by the request's own future, which is where axum
///   runs handlers. Calls in a task the handler spawns (`tokio::spawn`), or inside a
///   [`with_outcome`] of the handler's own, are not reported here.
/// - **The handler's own header wins:** if the response already has the header, it is kept.
/// - The [`Outcome`](crate::Outcome) is also put in the response's extensions, for logging middleware
///   outside this layer (`response.extensions().get::<Outcome>()`).
///
/// Cost: one allocation per request (the boxed response future); with the memo, one more
/// for the scope, and the values the request read are held until the response is made.
///
/// ```
/// use axum::{Router, routing::get};
/// use redis_cached::axum::CacheStatusLayer;
///
/// # async fn handler() -> &'static str { "" }
/// let app: Router = Router::new()
///     .route("/users/{id}", get(handler))
///     .layer(CacheStatusLayer::new());
/// ```
#[derive(Clone, Debug)]
pub struct CacheStatusLayer {
    header: HeaderName,
    memo: bool,
}

impl CacheStatusLayer {
    /// A layer setting `X-Cache`.
    ///
    /// ```
    /// let layer = redis_cached::axum::CacheStatusLayer::new();
    /// assert_eq!(layer.header_name(), "x-cache");
    /// ```
    pub fn new() -> CacheStatusLayer {
        CacheStatusLayer {
            header: HeaderName::from_static("x-cache"),
            memo: true,
        }
    }

    /// Whether each request runs in a [`memo`] scope of its own (default `true`): a cached
    /// call of a key the request was served already is answered from the scope, without a
    /// round trip, with the same value. `false` leaves every call to the cache.
    ///
    /// ```
    /// let layer = redis_cached::axum::CacheStatusLayer::new().memo(false);
    /// assert!(!layer.memoizes());
    /// ```
    pub fn memo(mut self, memo: bool) -> CacheStatusLayer {
        self.memo = memo;
        self
    }

    /// Whether each request runs in a [`memo`] scope (see [`memo`](Self::memo)).
    ///
    /// ```
    /// assert!(redis_cached::axum::CacheStatusLayer::new().memoizes());
    /// ```
    pub fn memoizes(&self) -> bool {
        self.memo
    }

    /// Sets another response header instead of `X-Cache`, such as `x-myapp-cache`.
    ///
    /// ```
    /// use axum::http::HeaderName;
    /// use redis_cached::axum::CacheStatusLayer;
    ///
    /// let layer = CacheStatusLayer::new().header(HeaderName::from_static("x-myapp-cache"));
    /// assert_eq!(layer.header_name(), "x-myapp-cache");
    /// ```
    pub fn header(mut self, name: HeaderName) -> CacheStatusLayer {
        self.header = name;
        self
    }

    /// The response header this layer sets.
    ///
    /// ```
    /// let layer = redis_cached::axum::CacheStatusLayer::default();
    /// assert_eq!(layer.header_name().as_str(), "x-cache");
    /// ```
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }
}

impl Default for CacheStatusLayer {
    fn default() -> CacheStatusLayer {
        CacheStatusLayer::new()
    }
}

impl<S> tower_layer::Layer<S> for CacheStatusLayer {
    type Service = CacheStatus<S>;

    fn layer(&self, inner: S) -> CacheStatus<S> {
        CacheStatus {
            inner,
            header: self.header.clone(),
            memo: self.memo,
        }
    }
}

/// The service [`CacheStatusLayer`] wraps around an inner service: see there.
#[derive(Clone, Debug)]
pub struct CacheStatus<S> {
    inner: S,
    header: HeaderName,
    memo: bool,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for CacheStatus<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = CacheStatusFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Creating the inner future runs nothing: the handler runs when it is polled, which
        // happens inside `with_outcome`.
        let future = self.inner.call(request);
        let header = self.header.clone();
        let memoized = self.memo;
        ResponseFuture::new(async move {
            let (result, outcome) = match memoized {
                true => memo(with_outcome(future)).await,
                false => with_outcome(future).await,
            };
            let mut response = result?;
            if let Some(outcome) = outcome {
                if let Entry::Vacant(entry) = response.headers_mut().entry(header) {
                    // `as_str` gives the runtime's constants, all valid header values.
                    entry.insert(HeaderValue::from_static(outcome.as_str()));
                }
                response.extensions_mut().insert(outcome);
            }
            Ok(response)
        })
    }
}

/// The response future of [`CacheStatus`]: see [`ResponseFuture`].
pub type CacheStatusFuture<ResBody, E> = ResponseFuture<ResBody, E>;
