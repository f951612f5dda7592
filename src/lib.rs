#![doc = include_str!("docs/overview.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc = include_str!("docs/cache_put.md")]
pub use redis_cached_macros::cache_put;
#[doc = include_str!("docs/invalidates.md")]
pub use redis_cached_macros::invalidates;
#[doc = include_str!("docs/redis_cached.md")]
pub use redis_cached_macros::redis_cached;
pub use redis_cached_runtime::{
    Cache, CacheBuilder, Codec, EntityTag, EntryInfo, Error, IntoTtl, KeyKind, KeyPart, KeyState,
    LagStats, NearCache, Outcome, TimedOut, check, codec, commit, describe_metrics, functions,
    init, install, installed, memo, registry, transaction, with_entity_tag,
    with_entity_tag_and_max_age, with_outcome, write_escaped,
};

/// Not public API: what the macros' generated code calls.
#[doc(hidden)]
pub mod __private {
    pub use redis_cached_runtime::private::*;
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;

pub mod guide;

/// The README's code blocks, run as doctests: the README is not the crate docs.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
