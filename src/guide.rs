//! Guides: how the cache behaves, one topic per page, with examples that compile. The
//! arguments of the two attributes are listed on [`redis_cached`](macro@crate::redis_cached)
//! and [`invalidates`](macro@crate::invalidates); these pages explain what they do together.

#[doc = include_str!("docs/guide/keys.md")]
pub mod keys {}

#[doc = include_str!("docs/guide/freshness.md")]
pub mod freshness {}

#[doc = include_str!("docs/guide/batches.md")]
pub mod batches {}

#[doc = include_str!("docs/guide/tags.md")]
pub mod tags {}

#[doc = include_str!("docs/guide/transactions.md")]
pub mod transactions {}

#[doc = include_str!("docs/guide/requests.md")]
pub mod requests {}

#[doc = include_str!("docs/guide/topologies.md")]
pub mod topologies {}

#[doc = include_str!("docs/guide/near_cache.md")]
pub mod near_cache {}

#[doc = include_str!("docs/guide/codecs.md")]
pub mod codecs {}

#[doc = include_str!("docs/guide/guarantees.md")]
pub mod guarantees {}

#[doc = include_str!("docs/guide/metrics.md")]
pub mod metrics {}

#[doc = include_str!("docs/guide/tracing.md")]
pub mod tracing {}

#[doc = include_str!("docs/guide/operations.md")]
pub mod operations {}

#[doc = include_str!("docs/guide/deploys.md")]
pub mod deploys {}
