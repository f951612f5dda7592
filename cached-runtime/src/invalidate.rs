//! The write side of a [`Cache`]: [`Cache::invalidate`] and [`Cache::invalidate_tags`], and
//! the one deletion every invalidation ends in (held by a [`transaction`] scope until its
//! commit; then `UNLINK`, near-tier eviction, and deferral of what could not be deleted).
//! An invalidation that has started finishes even if its caller is dropped ([`Completing`]).

use crate::cache::Cache;
use crate::error::Error;
use crate::spans;
use crate::task::spawn_detached;
use crate::transaction;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tracing::Instrument;

impl Cache {
    /// Deletes entries by their rendered keys (without the prefix, which is added; values
    /// escaped as templates escape them, see [`write_escaped`](crate::write_escaped); a hash
    /// tag as stored, `{tenant:7}`, not `#{tenant:7}`), in one
    /// command (on a Redis Cluster, one per hash slot, sent at once), as `#[invalidates]`
    /// does. Inside a [`transaction`](crate::transaction) scope, the keys are held until
    /// its commit. Keys whose server cannot be reached are remembered, treated as misses by this
    /// process, and deleted in the background once it answers again; the error is returned
    /// all the same. With [`tombstones`](crate::CacheBuilder::tombstones), each key is
    /// overwritten with a tombstone naming `Cache::invalidate` instead of deleted. A call
    /// dropped before it finished (a cancelled request) goes on in a task of its own, so a
    /// started invalidation is not lost with its caller (unless dropped outside a Tokio
    /// runtime: that is logged at error level).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] while the breaker is open, [`Error::Redis`] or
    /// [`Error::Timeout`] when the `UNLINK` fails, [`Error::NotReplicated`] when fewer
    /// replicas than asked for confirmed it (see
    /// [`CacheBuilder::replicated_invalidation`](crate::CacheBuilder::replicated_invalidation)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.invalidate(&["user:42", "users:all"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, keys: &[&str]) -> Result<(), Error> {
        let keys: Vec<String> = keys
            .iter()
            .map(|key| self.inner.keys.render(|builder| builder.literal(key)))
            .collect();
        self.delete_completing(keys, "Cache::invalidate").await
    }

    /// Invalidates every entry carrying one of `tags` (rendered tags, as a function's
    /// `tags = [...]` renders them: `department:7`; a value that needs escaping is written
    /// escaped, see [`write_escaped`](crate::write_escaped)), in one command per tag's server,
    /// however many entries carry them. Works like [`Cache::invalidate`]: held inside a
    /// [`transaction`](crate::transaction), and deferred (the tag's entries are misses in this
    /// process) when the store cannot be reached.
    ///
    /// Each tag is a small key holding a random version; an entry records its tags'
    /// versions, read before its body ran, and is served only while they are current.
    /// Invalidating a tag deletes its key, so every entry stamped with the old version is a
    /// miss from then on, including one whose body was running meanwhile.
    ///
    /// # Errors
    ///
    /// As [`Cache::invalidate`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.invalidate_tags(&["department:7"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<(), Error> {
        let keys: Vec<String> = tags
            .iter()
            .map(|tag| self.inner.keys.render_tag(|builder| builder.literal(tag)))
            .collect();
        self.delete_completing(keys, "Cache::invalidate_tags").await
    }

    /// [`Cache::delete`], finished in a task of its own if the caller is dropped meanwhile.
    async fn delete_completing(&self, keys: Vec<String>, by: &'static str) -> Result<(), Error> {
        let cache = self.clone();
        Completing::new(async move { cache.delete(keys, by).await }).await
    }

    /// Deletes `keys` (see [`Cache::invalidate`]) for `by` (the invalidating function's path,
    /// which a tombstone records), or, inside a [`transaction`] scope, holds them for its
    /// commit; in a `cache.remove` span, the one of every invalidation.
    pub(crate) fn delete(
        &self,
        keys: Vec<String>,
        by: &'static str,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        // At once, in the caller's task: the memo scopes around it must not serve them again.
        crate::request::evict(&self.inner, &keys);
        let span = spans::remove(by, &self.inner.spans, &keys);
        self.delete_or_hold(keys, by).instrument(span)
    }

    /// [`Cache::delete`], outside its span.
    async fn delete_or_hold(&self, keys: Vec<String>, by: &'static str) -> Result<(), Error> {
        let held = transaction::owe(|| {
            let (cache, keys) = (self.clone(), keys.clone());
            // Deleted however the commit went: a failed one may have applied.
            Box::new(move |_| {
                Box::pin(async move {
                    let _ = cache.delete_now(keys, by).await;
                })
            })
        });
        if held {
            return Ok(());
        }
        self.delete_now(keys, by).await
    }

    /// Deletes `keys` from the store, then evicts them from the near tier, so this process
    /// reads its own writes at once; on failure defers them (see [`Cache::invalidate`]).
    /// Never held by a transaction scope.
    async fn delete_now(&self, keys: Vec<String>, by: &'static str) -> Result<(), Error> {
        let inner = &self.inner;
        // Calls that start from now on must not join a degraded flight that began earlier.
        inner.flights.forget(&keys);
        let result = inner.store.delete(&keys, by).await;
        if let Some(near) = &inner.near {
            near.evict(&keys);
        }
        result.map_err(|undeleted| {
            inner.pending.defer(&inner.store, undeleted.keys, by);
            undeleted.error
        })
    }
}

/// An invalidation that finishes even if its caller is dropped while awaiting it (a
/// cancelled request): dropped unfinished, it goes on in a task of its own, and its output
/// is dropped there. Dropped outside a Tokio runtime (or while one shuts down) it cannot go
/// on; that is logged at error level.
pub(crate) struct Completing<F>(Option<Pin<Box<F>>>)
where
    F: Future + Send + 'static,
    F::Output: Send;

impl<F> Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    pub(crate) fn new(work: F) -> Self {
        Completing(Some(Box::pin(work)))
    }
}

impl<F> Future for Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(work) = self.0.as_mut() else {
            return Poll::Pending; // polled after completion: never again ready
        };
        let polled = work.as_mut().poll(cx);
        if polled.is_ready() {
            self.0 = None;
        }
        polled
    }
}

impl<F> Drop for Completing<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    fn drop(&mut self) {
        if let Some(work) = self.0.take() {
            let spawned = spawn_detached(async move {
                let _ = work.await;
            });
            if !spawned {
                tracing::error!(
                    "an invalidation dropped outside a Tokio runtime could not finish: its \
                     entries stay until their TTL"
                );
            }
        }
    }
}
