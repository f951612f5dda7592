//! The deletion of an `#[invalidates]` call: its keys are rendered at entry and deleted
//! after the body, whatever it returned, and in the background if the caller is dropped.
//! Keys naming the result (`<return.id>`) are rendered after the body, from the part of the
//! output its shape stores, and only when there is one; all go in the same deletion, as do
//! the keys of `each = ids`, one per element.

use crate::cache::Cache;
use crate::invalidate::Completing;
use crate::key::KeyBuilder;
use crate::private::shape::Shape;
use crate::task::spawn_detached;
use crate::telemetry::{self, Op};
use std::future::Future;
use std::pin::Pin;

/// One call of an `#[invalidates]` function: its cache and the keys it makes stale.
pub struct Invalidation {
    function: &'static str,
    cache: Option<Cache>,
    keys: Vec<String>,
}

impl Invalidation {
    /// An invalidation with no keys yet.
    pub fn new(cache: Option<Cache>, function: &'static str, capacity: usize) -> Self {
        Invalidation {
            function,
            cache,
            keys: Vec::with_capacity(capacity),
        }
    }

    /// Renders one more key at once, if there is a cache.
    pub fn key(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        self.add_key(render);
        self
    }

    /// Renders one more tag at once, if there is a cache: its key is deleted with the rest,
    /// which makes every entry carrying the tag a miss.
    pub fn tag(mut self, render: impl FnOnce(&mut KeyBuilder)) -> Self {
        self.add_tag(render);
        self
    }

    /// Renders one key per id at once (`each = ids`), if there is a cache: all go in the
    /// same deletion as the other keys.
    pub fn each_key<K>(mut self, ids: &[K], render: impl Fn(&mut KeyBuilder, &K)) -> Self {
        if let Some(cache) = &self.cache {
            let keys = &cache.inner.keys;
            (self.keys).extend(ids.iter().map(|id| keys.render(|key| render(key, id))));
        }
        self
    }

    /// [`Invalidation::each_key`] for a tag template naming the ids.
    pub fn each_tag<K>(mut self, ids: &[K], render: impl Fn(&mut KeyBuilder, &K)) -> Self {
        if let Some(cache) = &self.cache {
            let keys = &cache.inner.keys;
            (self.keys).extend(ids.iter().map(|id| keys.render_tag(|key| render(key, id))));
        }
        self
    }

    /// [`Invalidation::key`] in place: for the keys rendered from the result.
    pub fn add_key(&mut self, render: impl FnOnce(&mut KeyBuilder)) {
        if let Some(cache) = &self.cache {
            self.keys.push(cache.inner.keys.render(render));
        }
    }

    /// [`Invalidation::tag`] in place: for the tags rendered from the result.
    pub fn add_tag(&mut self, render: impl FnOnce(&mut KeyBuilder)) {
        if let Some(cache) = &self.cache {
            self.keys.push(cache.inner.keys.render_tag(render));
        }
    }
}

/// Runs `body`, then deletes the keys in one command whatever it returned. If the caller
/// is dropped before that (cancelled mid-write), or while the deletion waits for Redis, the
/// keys are deleted in the background.
pub async fn invalidate<R, F: Future<Output = R>>(
    mut invalidation: Invalidation,
    body: Pin<&mut F>,
) -> R {
    let output = body.await;
    if let Some(delete) = invalidation.take() {
        Completing::new(delete).await;
    }
    output
}

/// [`invalidate`] for a function whose templates name its result: after `body`, when its
/// output has the part the shape `S` stores (the value, `Ok(t)`, `Some(t)`, `Ok(Some(t))`),
/// `from_result` adds the keys and tags rendered from it; then every key goes in one
/// command. Without that part (an `Err`, a `None`), only the keys rendered at entry go. If
/// the caller is dropped before the body returns, those are deleted in the background.
pub async fn invalidate_with_result<S, R, F, K>(
    mut invalidation: Invalidation,
    body: Pin<&mut F>,
    from_result: K,
) -> R
where
    S: Shape<R>,
    F: Future<Output = R>,
    K: FnOnce(&mut Invalidation, &S::Stored),
{
    let output = body.await;
    if let Some(part) = crate::private::shape::part::<S, R>(&output) {
        from_result(&mut invalidation, part);
    }
    if let Some(delete) = invalidation.take() {
        Completing::new(delete).await;
    }
    output
}

impl Invalidation {
    /// The deletion still owed, if any: taking it leaves nothing for `drop` to do.
    fn take(&mut self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let cache = self.cache.take()?;
        let keys = std::mem::take(&mut self.keys);
        let function = self.function;
        Some(async move {
            let count = keys.len();
            match telemetry::timed(function, Op::Delete, cache.delete(keys, function)).await {
                Ok(()) => telemetry::invalidation(function, count),
                Err(error) => telemetry::error(&cache.inner.log, function, Op::Delete, &error),
            }
        })
    }
}

impl Drop for Invalidation {
    fn drop(&mut self) {
        if let Some(delete) = self.take() {
            spawn_detached(delete);
        }
    }
}
