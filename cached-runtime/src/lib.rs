//! Runtime of [`redis-cached`](https://docs.rs/redis-cached): the cache handle, key
//! rendering, codecs and the helpers generated code calls. Depend on `redis-cached`, which
//! re-exports everything here.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod clear;
pub mod codec;
mod compress;
mod entry;
mod error;
mod expiry;
mod fingerprint;
mod flight;
mod freshness;
mod global;
mod inspect;
mod invalidate;
mod key;
mod near;
mod outcome;
mod pending;
pub mod registry;
mod replay;
mod request;
mod spans;
mod stats;
mod store;
mod task;
mod telemetry;
mod timed_out;
mod tombstone;
mod transaction;
mod ttl;
mod url;

#[doc(hidden)]
pub mod private;

pub use crate::builder::CacheBuilder;
pub use crate::cache::Cache;
pub use crate::codec::Codec;
pub use crate::error::Error;
pub use crate::global::{init, install, installed};
pub use crate::inspect::{EntryInfo, KeyKind, KeyState};
pub use crate::key::{KeyPart, write_escaped};
pub use crate::near::{LagStats, NearCache};
pub use crate::outcome::{Outcome, with_outcome};
pub use crate::registry::{check, functions};
pub use crate::request::{EntityTag, memo, with_entity_tag, with_entity_tag_and_max_age};
pub use crate::telemetry::describe_metrics;
pub use crate::timed_out::TimedOut;
pub use crate::transaction::{commit, transaction};
pub use crate::ttl::IntoTtl;
