//! axum integration (feature `axum`): the `X-Cache` response header and the "fresh data"
//! request, with no caching code in handlers; and an inspection page for operators.
//!
//! - [`CacheStatusLayer`] runs each request's handler inside [`with_outcome`](crate::with_outcome) and sets
//!   `X-Cache` on the response (`HIT`, `MISS`, `REFRESH`, `COALESCED` or `BYPASS`) from the
//!   cached calls the handler made;
//!   the header is absent when it made none.
//!   Each request also runs in a [`memo`](crate::memo) scope (unless
//!   [`memo(false)`](CacheStatusLayer::memo)): a key the request reads twice is read from
//!   Redis once, and both reads return the same value.
//! - [`ConditionalLayer`], on a route, sets a weak `ETag` derived from the cached entries
//!   the handler read, and answers an `If-None-Match` that names it with `304 Not
//!   Modified`: clients revalidate without downloading an unchanged response again.
//! - [`FreshRequested`] extracts whether the client asks for fresh data (`Cache-Control:
//!   no-cache`, and optionally a query flag of your choosing): the `bool` that
//!   `#[redis_cached(refresh = ...)]` takes.
//! - [`inspect`] is a router to nest under an admin path, behind your authentication: the
//!   cached functions with this process's statistics, and what a key holds.
//!
//! ```toml
//! [dependencies]
//! redis-cached = { version = "0.1", features = ["axum"] }
//! ```
//!
//! ```
//! use axum::{Json, Router, extract::Path, routing::get};
//! use redis_cached::axum::{CacheStatusLayer, ConditionalLayer, FreshQueryParam, FreshRequested};
//! use redis_cached::redis_cached;
//!
//! #[redis_cached(key = "user:<id>", ttl = 60, refresh = refresh)]
//! async fn user_name(id: u64, refresh: bool) -> String {
//!     format!("user {id}") // the database read
//! }
//!
//! /// `?invalidate_cache=true` asks for fresh data, as `Cache-Control: no-cache` does.
//! struct InvalidateCache;
//! impl FreshQueryParam for InvalidateCache {
//!     const NAME: &'static str = "invalidate_cache";
//! }
//!
//! async fn get_user(
//!     Path(id): Path<u64>,
//!     FreshRequested(refresh, _): FreshRequested<InvalidateCache>,
//! ) -> Json<String> {
//!     Json(user_name(id, refresh).await)
//! }
//!
//! let app: Router = Router::new()
//!     // ETag: W/"..." of the entries read; If-None-Match with it: 304 Not Modified.
//!     .route("/users/{id}", get(get_user).layer(ConditionalLayer::new()))
//!     .layer(CacheStatusLayer::new()); // X-Cache: HIT, MISS, REFRESH, ...; one memo per request
//! ```

mod cache_status;
mod conditional;
mod fresh;
mod inspect;
mod response_future;

pub use self::cache_status::{CacheStatus, CacheStatusFuture, CacheStatusLayer};
pub use self::conditional::{Conditional, ConditionalFuture, ConditionalLayer};
pub use self::fresh::{FreshQueryParam, FreshRequested, HeadersOnly, InvalidFreshParam};
pub use self::inspect::inspect;
pub use self::response_future::ResponseFuture;
