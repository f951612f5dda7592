//! [`ConditionalLayer`]: an `ETag` from the cached entries a handler read, and `304 Not
//! Modified` for a request that names it in `If-None-Match`.

use super::ResponseFuture;
use crate::{with_entity_tag, with_entity_tag_and_max_age};
use ::axum::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    ETAG, IF_NONE_MATCH, LAST_MODIFIED, TRANSFER_ENCODING,
};
use ::axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use std::task::{Context, Poll};

/// A tower layer that gives the responses of a route an `ETag` derived from the cached
/// entries its handler read, and answers a request whose `If-None-Match` names it with
/// `304 Not Modified` and no body (RFC 9110 §13.1.2, §15.4.5).
///
/// The handler runs inside [`with_entity_tag`]: the tag is a digest of the keys and stored
/// bytes of the entries its cached calls were served (a hit, the value a miss stored, a
/// value another caller's fill gave, a memo hit), so it changes when one of them is
/// invalidated and filled again, or refreshed with other bytes, and is the same in every
/// process. Hits cost no extra work beyond a SHA-256 of the bytes already read; the body is
/// never hashed.
///
/// - **Weak** (`W/"..."`): the tag stands for the data the response is made of, not its
///   bytes (a later layer may compress them, the handler may format a date), which is what
///   a weak validator means; `If-None-Match` uses the weak comparison, so 304s work alike.
/// - **Only** for `GET` and `HEAD` requests, and `2xx` responses; not when the handler set
///   an `ETag` itself (kept, and no 304 from here).
/// - **No tag** when the handler made no cached call, or one served no known entry: a
///   bypass (no cache, Redis unreachable, an invalidation not yet applied), a batch
///   function, a value that was not stored (an `Err`, a `None` without `cache_none`), a
///   near-tier hit of a `near_cache = true` function (it holds the decoded value, not the
///   bytes). No tag means no 304: every request gets the full response.
/// - **Use it only on routes whose responses are made of the cached values they read**
///   (and of the request): data read outside the cache does not move the tag, and a client
///   would be told a response changed by it is not modified.
/// - The handler still runs on a 304 (the tag is known once it has read its entries): what
///   is saved is the response's transfer and the client's work. A 304 keeps the response's
///   headers (`ETag`, `Cache-Control`, `Vary`, ...) but the representation's own
///   (`Content-Type`, `Content-Length`, ...).
/// - **`Cache-Control`:** none by default, so clients and shared caches revalidate (and a
///   write is seen at once, through the new tag). With [`max_age`](Self::max_age), a
///   response whose entries' remaining TTLs are known gets `Cache-Control: max-age=<the
///   shortest, in whole seconds>`, unless the handler set `Cache-Control` itself: clients
///   may then reuse it that long without asking, so a write within it is not seen by them.
///   No `Age` is sent: the max-age is already what remains (a client's age of the response
///   starts at 0).
///
/// ```
/// use axum::{Router, routing::get};
/// use redis_cached::axum::{CacheStatusLayer, ConditionalLayer};
///
/// # async fn get_user() -> &'static str { "" }
/// let app: Router = Router::new()
///     .route("/users/{id}", get(get_user).layer(ConditionalLayer::new()))
///     .layer(CacheStatusLayer::new());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConditionalLayer {
    max_age: bool,
}

impl ConditionalLayer {
    /// The layer.
    ///
    /// ```
    /// let layer = redis_cached::axum::ConditionalLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> ConditionalLayer {
        ConditionalLayer::default()
    }

    /// Also sets `Cache-Control: max-age` to the shortest remaining TTL of the entries read
    /// (see above). Each lookup in the handler then asks Redis for its entry's TTL, in the
    /// same round trip (a script rather than the native lookup). Off by default.
    ///
    /// ```
    /// let layer = redis_cached::axum::ConditionalLayer::new().max_age(true);
    /// # let _ = layer;
    /// ```
    pub fn max_age(mut self, max_age: bool) -> ConditionalLayer {
        self.max_age = max_age;
        self
    }
}

impl<S> tower_layer::Layer<S> for ConditionalLayer {
    type Service = Conditional<S>;

    fn layer(&self, inner: S) -> Conditional<S> {
        Conditional {
            inner,
            max_age: self.max_age,
        }
    }
}

/// The service [`ConditionalLayer`] wraps around an inner service: see there.
#[derive(Clone, Debug)]
pub struct Conditional<S> {
    inner: S,
    max_age: bool,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for Conditional<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ConditionalFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let conditional = matches!(*request.method(), Method::GET | Method::HEAD);
        let if_none_match: Vec<HeaderValue> = match conditional {
            true => request
                .headers()
                .get_all(IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
            false => Vec::new(),
        };
        let future = self.inner.call(request);
        let max_age = self.max_age;
        ResponseFuture::new(async move {
            if !conditional {
                return future.await;
            }
            let (result, tag) = match max_age {
                true => with_entity_tag_and_max_age(future).await,
                false => with_entity_tag(future).await,
            };
            let mut response = result?;
            let Some(tag) = tag else {
                return Ok(response);
            };
            if !response.status().is_success() || response.headers().contains_key(ETAG) {
                return Ok(response);
            }
            let Ok(value) = HeaderValue::from_str(tag.as_str()) else {
                return Ok(response);
            };
            response.headers_mut().insert(ETAG, value);
            if let Some(left) = tag.max_age().filter(|_| max_age)
                && !response.headers().contains_key(CACHE_CONTROL)
                && let Ok(value) = HeaderValue::from_str(&format!("max-age={}", left.as_secs()))
            {
                response.headers_mut().insert(CACHE_CONTROL, value);
            }
            let named = if_none_match
                .iter()
                .any(|names| names.to_str().is_ok_and(|names| tag.matches(names)));
            Ok(match named {
                true => not_modified(response),
                false => response,
            })
        })
    }
}

/// `response` as a `304 Not Modified`: no body, and none of the headers that describe it.
fn not_modified<B: Default>(response: Response<B>) -> Response<B> {
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        CONTENT_LANGUAGE,
        CONTENT_RANGE,
        LAST_MODIFIED,
        TRANSFER_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    Response::from_parts(parts, B::default())
}

/// The response future of [`Conditional`]: see [`ResponseFuture`].
pub type ConditionalFuture<ResBody, E> = ResponseFuture<ResBody, E>;
