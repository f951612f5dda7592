//! The write-through of `#[cache_put]`, fenced: before the body runs, a lease is put on each
//! key whatever it holds (which is also an invalidation of the old value); after it, the
//! value is stored under each key only where that lease still holds it. Any other write or
//! invalidation of the key meanwhile (another put, an `#[invalidates]`, a reader's fill after
//! an invalidation) replaced the lease, and then the key is invalidated instead: two writes
//! that overlap leave it empty, and the next read fills from the source.
//!
//! The leases are this process's flights while the body runs: kept alive however long it
//! takes, and readers in this process wait for the put's value instead of polling Redis.
//!
//! Inside a [`transaction`](crate::transaction) scope the stores wait for the commit: made if
//! it succeeded (and no enclosing scope is still open), the keys invalidated otherwise; a
//! rollback (or a caller dropped before the end) invalidates them, since the body may have
//! written.

use crate::cache::Cache;
use crate::flight::{self, Landing, Pilot};
use crate::invalidate::Completing;
use crate::key::KeyBuilder;
use crate::private::call::{Call, Context, run};
use crate::private::shape::Shape;
use crate::private::stored::ValueCodec;
use crate::request;
use crate::store::Tags;
use crate::store::lease::Lease;
use crate::store::tags::Stamp;
use crate::task::spawn_detached;
use crate::telemetry::{self, Op};
use crate::transaction::{self, Committed};
use futures_util::future::join_all;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One call of a `#[cache_put]` function: its keys and how their entries are stored (the
/// options of a [`Call`], as `#[redis_cached]` stores them).
pub struct Put {
    call: Call,
    /// The keys after the call's own.
    more: Vec<String>,
}

impl Put {
    /// A put under `call`'s key, stored with `call`'s options.
    pub fn new(call: Call) -> Self {
        Put {
            call,
            more: Vec::new(),
        }
    }

    /// Renders one more key at once, if there is a cache.
    pub fn key(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        if let Some((cache, _)) = &self.call.target {
            self.more.push(cache.inner.keys.render(render));
        }
        self
    }
}

/// Runs `body` between a fence on the put's keys and the store of its value (the part the
/// shape `S` stores: an `Err` or a `None` not stored as such invalidates the keys instead).
pub async fn cache_put<S, R, F>(put: Put, codec: ValueCodec<S::Stored>, body: Pin<&mut F>) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
{
    let Put { call, more } = put;
    let (Some(cx), Some((handle, _))) = (Context::new(&call, codec), &call.target) else {
        return body.await;
    };
    let mut keys: Vec<String> = std::iter::once(cx.key.to_owned()).chain(more).collect();
    // A key twice would find its own value at its second store, and invalidate it.
    keys.sort_unstable();
    keys.dedup();
    let mut fence = Fence {
        cache: handle.clone(),
        function: cx.function,
        lease: Lease::new(),
        keys: keys.into_iter().map(|key| (key, None)).collect(),
        tags: cx.tags.keys.to_vec(),
        tag_ttl: cx.tags.ttl,
        value: None,
        armed: true,
    };
    fence.take(&cx).await;
    // Calls of any of the put's keys from inside its body run at once, as inside a fill.
    let keys = fence.keys.iter().map(|(key, _)| key.as_str());
    let (output, took) = run(cx.function, cx.key, flight::filling_all(keys, body)).await;
    let entry = S::stored(&output, call.cache_none);
    let encoded = entry.and_then(|entry| cx.encode(entry));
    let ttl = entry.and_then(|entry| cx.entry_ttl(entry));
    if let (Some(bytes), Some(ttl)) = (encoded, ttl) {
        let (stored, kept) = cx.stored_form(&bytes, ttl, took);
        fence.value = Some(Value {
            stored: stored.into_owned(),
            kept,
            landing: bytes,
        });
    }
    // The caller's memo scope reads the keys again: the put's value, or the source.
    let keys: Vec<String> = fence.keys.iter().map(|(key, _)| key.clone()).collect();
    request::evict(&handle.inner, &keys);
    // Held by a transaction scope, if the call is in one; else run now, and to its end even
    // if the caller is dropped meanwhile.
    let mut settle = Some(fence.settle());
    let held = transaction::owe(|| {
        let settle = settle.take();
        Box::new(move |committed| {
            Box::pin(async move {
                if let Some(settle) = settle {
                    settle.run(committed).await;
                }
            })
        })
    });
    if let Some(settle) = settle.filter(|_| !held) {
        Completing::new(settle.run(Committed::Yes)).await;
    }
    output
}

/// What a put stores.
struct Value {
    /// The bytes under the key (in their freshness envelope, if any).
    stored: Vec<u8>,
    /// How long the store keeps them.
    kept: Duration,
    /// The entry as this process's waiting readers decode it.
    landing: Arc<[u8]>,
}

/// A put's leases on its keys, from before its body to the end of its store; dropped armed
/// (the caller dropped, a transaction rolled back), it invalidates the keys in the background.
struct Fence {
    cache: Cache,
    function: &'static str,
    lease: Lease,
    /// Each key, with its flight and the tag versions read when its lease was taken (`None`:
    /// no lease).
    keys: Vec<(String, Option<(Pilot, Stamp)>)>,
    tags: Vec<String>,
    tag_ttl: Duration,
    value: Option<Value>,
    armed: bool,
}

impl Fence {
    /// Puts the lease on every key at once. A key with no lease (leases off, its
    /// invalidation pending, Redis failing) is only invalidated after the body.
    async fn take<T>(&mut self, cx: &Context<'_, T>) {
        let store = &cx.cache.store;
        // What a put overwrites is invalidated: lost in a failover, its write would leave the
        // old value on the promoted replica.
        let keys: Vec<String> = self.keys.iter().map(|(key, _)| key.clone()).collect();
        store.remember(&keys, self.function);
        if !store.leases().on() {
            return;
        }
        let (lease, cache, tags) = (&self.lease, &self.cache, &self.tags);
        let taken = join_all(self.keys.iter().map(|(key, _)| async move {
            if pending(cache, key, tags) {
                return None;
            }
            let stamp = store
                .take_lease(key, lease, cx.tags)
                .await
                .map_err(|error| cx.error(Op::Fill, &error))
                .ok()?;
            Some((cx.cache.flights.depart(store, key, lease, &stamp), stamp))
        }))
        .await;
        for ((_, held), taken) in self.keys.iter_mut().zip(taken) {
            *held = taken;
        }
    }

    /// The fence, moved out of the call's future for its last step.
    fn settle(&mut self) -> Settle {
        let fence = Fence {
            cache: self.cache.clone(),
            function: self.function,
            lease: self.lease.clone(),
            keys: std::mem::take(&mut self.keys),
            tags: std::mem::take(&mut self.tags),
            tag_ttl: self.tag_ttl,
            value: self.value.take(),
            armed: true,
        };
        self.armed = false;
        Settle(fence)
    }
}

/// Whether `key`'s (or a tag's) invalidation has not reached the store yet: such a key is
/// neither fenced nor stored, only invalidated again.
fn pending(cache: &Cache, key: &str, tags: &[String]) -> bool {
    let pending = &cache.inner.pending;
    pending.contains(key) || tags.iter().any(|tag| pending.contains(tag))
}

/// The last step of a put, owned (`'static`), for the call or a transaction's commit;
/// dropped before it ran (a rollback), its fence invalidates the keys.
struct Settle(Fence);

impl Settle {
    /// Stores the value under each key its lease still holds, and invalidates the others
    /// (all of them unless the writes are known to be visible).
    async fn run(mut self, committed: Committed) {
        let fence = &mut self.0;
        let store = &fence.cache.inner.store;
        let tags = Tags {
            keys: &fence.tags,
            ttl: fence.tag_ttl,
        };
        let mut stored = Vec::new();
        for (key, held) in &mut fence.keys {
            let filled = match (&fence.value, held.take()) {
                (Some(value), Some((pilot, stamp)))
                    if committed == Committed::Yes && !pending(&fence.cache, key, &fence.tags) =>
                {
                    let fill =
                        store.fill(key, &fence.lease, &value.stored, value.kept, tags, &stamp);
                    let filled = telemetry::timed(fence.function, Op::Fill, fill)
                        .await
                        .unwrap_or_else(|error| {
                            let log = &fence.cache.inner.log;
                            telemetry::error(log, fence.function, Op::Fill, &error);
                            false
                        });
                    if filled {
                        pilot.land(Landing::Value(value.landing.clone()));
                    }
                    filled
                }
                // Dropped unlanded, a flight lets its waiters look the key up again.
                _ => false,
            };
            if filled {
                stored.push(key.clone());
            }
        }
        let inner = &fence.cache.inner;
        inner.flights.forget(&stored);
        if let Some(near) = &inner.near {
            near.evict(&stored);
        }
        // The others are invalidated, here or, if this is dropped meanwhile, by the fence.
        fence.keys.retain(|(key, _)| !stored.contains(key));
        if !fence.keys.is_empty() {
            let unstored = fence.keys.iter().map(|(key, _)| key.clone()).collect();
            invalidate(&fence.cache, unstored, fence.function).await;
        }
        fence.armed = false;
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        if !self.armed || self.keys.is_empty() {
            return;
        }
        let keys = self.keys.drain(..).map(|(key, _)| key).collect();
        let (cache, function) = (self.cache.clone(), self.function);
        spawn_detached(async move { invalidate(&cache, keys, function).await });
    }
}

/// Invalidates `keys` for `function`, as `#[invalidates]` does (deferred on failure).
async fn invalidate(cache: &Cache, keys: Vec<String>, function: &'static str) {
    let count = keys.len();
    match telemetry::timed(function, Op::Delete, cache.delete(keys, function)).await {
        Ok(()) => telemetry::invalidation(function, count),
        Err(error) => telemetry::error(&cache.inner.log, function, Op::Delete, &error),
    }
}
