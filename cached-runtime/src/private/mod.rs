//! What generated code calls. Not public API: names and signatures change without notice.
//!
//! `cached.rs` holds the cache-aside algorithm of `#[redis_cached]`, over the [`Call`] value
//! and its helpers in `call.rs`; `refresh.rs` what a call does with an entry past (or near)
//! its TTL; `batch.rs` the algorithm of the batch form; `invalidation.rs` the deletion of
//! `#[invalidates]`; `put.rs` the fenced write-through of
//! `#[cache_put]`; `shape.rs` which part of a return value is stored; `stored.rs` what the
//! stored type must implement (the one place that checks it).

mod batch;
mod cached;
mod call;
mod invalidation;
mod put;
mod refresh;
mod shape;
mod share;
mod stored;
mod time_limit;

pub use self::batch::{Batch, BatchShape, Filling, Looked, batch_fill, batch_lookup};
pub use self::cached::{cached, cached_revalidating};
pub use self::call::Call;
pub(crate) use self::call::Context;
pub use self::invalidation::{Invalidation, invalidate, invalidate_with_result};
pub use self::put::{Put, cache_put};
pub use self::shape::{OkOf, OkSomeOf, Shape, SomeOf, Whole};
pub use self::share::{CloneOutput, KeepOutput, Probe, Sharing};
pub use self::stored::{
    NearClone, StorableBatch, StorableOk, StorableOkSome, StorableSome, StorableWhole, ValueCodec,
    near_clone, shaped, stored_batch, stored_ok, stored_ok_some, stored_some, stored_whole,
    ttl_from,
};
pub use self::time_limit::{TimesOut, time_limit};
pub use crate::entry::Entry;
pub use crate::fingerprint::ShapeCell;
pub use crate::freshness::skew_clock;
pub use crate::key::KeyBuilder;
pub use crate::near::NearValue;
// Through here, so that a user crate named `core` cannot break an expansion.
pub use crate::registry::{
    CachedFunction, CachedParts, InvalidatingFunction, Registered, Template, Token,
};
pub use ::core::{concat, file, line, module_path, option::Option, pin::pin};
pub use ::std::boxed::Box;
pub use inventory;

use crate::Cache;

/// What `cache = <expr>` may evaluate to: a `Cache`, or any reference to one.
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must be a `redis_cached::Cache` or a reference to one, not `{Self}`",
    label = "expected a `Cache` or `&Cache`, as in `cache = &self.cache`"
)]
pub trait IntoCache {
    /// The cache, cloned (a clone is one `Arc` increment).
    fn to_cache(&self) -> Cache;
}

impl IntoCache for Cache {
    fn to_cache(&self) -> Cache {
        self.clone()
    }
}

impl<T: IntoCache + ?Sized> IntoCache for &T {
    fn to_cache(&self) -> Cache {
        (**self).to_cache()
    }
}

/// The cache a call uses when it names none.
pub fn global() -> Option<Cache> {
    crate::global::global()
}

/// The cache given explicitly by `cache = <expr>`, borrowed so that the expression may name
/// a parameter the body still uses.
pub fn explicit<C: IntoCache + ?Sized>(cache: &C) -> Option<Cache> {
    Some(cache.to_cache())
}
