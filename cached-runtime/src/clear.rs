//! Clearing: every key under a cache's prefix ([`Cache::clear`]), or every entry of one
//! cached function ([`Cache::clear_function`]). Both walk the keyspace with `SCAN` and delete
//! in batches (`store/redis/clear.rs`), then empty this process's own copies: the near tier
//! and the degraded flights. Nothing is added to the read path: a hit stays one command.

use crate::cache::Cache;
use crate::error::Error;
use crate::registry::{self, CachedFunction, distance, glob_escape};
use crate::store::Sweep;
use crate::telemetry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A progress line each time this many more keys are deleted.
const LOG_EVERY: u64 = 10_000;

/// How many of the closest names an [`Error::UnknownFunction`] suggests.
const SUGGESTIONS: usize = 3;

impl Cache {
    /// Deletes every key under this cache's [`prefix`](Cache::prefix): entries, fill leases
    /// and tag versions, of every function; returns how many keys it deleted.
    ///
    /// It walks the keyspace with `SCAN .. MATCH <prefix>* COUNT 1000` on every primary (the
    /// one server, the primary Sentinel names, each primary of a Redis Cluster) and `UNLINK`s
    /// each batch (on a Cluster, one command per hash slot), never `KEYS`: the server keeps
    /// serving between steps, and the cost is O(keys in the database): see the measured
    /// figures in the guide's `operations` page.
    /// On `mem://` it removes the cache's entries. It logs a line at info level every
    /// 10,000 keys and at the end, and counts the keys in `redis_cached_cleared_keys_total`
    /// (`function="*"`).
    ///
    /// With an empty prefix, every key of the database is this cache's, and every key is
    /// deleted, other applications' included. `FLUSHDB` is not used even then: it reports
    /// no count, application users are often denied it (ACL category `@dangerous`; managed
    /// services rename or disable it), and it would be one code path more for the same
    /// result.
    ///
    /// This process's near tier is emptied and its degraded flights (calls sharing a body
    /// run while Redis was unreachable) forgotten; other processes' near tiers drop the
    /// deleted keys through their tracking connections, as for any deletion.
    ///
    /// # Guarantees
    ///
    /// Once `clear` returns `Ok`, no process serves an entry written before `clear`
    /// started, and no fill in flight when it started stores its value: its lease lives in
    /// the entry's key and is deleted with it, and a fill stores only while its lease holds
    /// the key. Calls that start while the clear runs read the source after it began; they
    /// may store, and their entries stay. With
    /// [`without_fill_leases`](crate::CacheBuilder::without_fill_leases) there are no leases
    /// and a fill in flight may store after the clear. A key moved between Cluster nodes
    /// while the clear runs (resharding) may be missed.
    ///
    /// Dropping the returned future stops the clear part-way.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] or [`Error::Timeout`] when a `SCAN` or `UNLINK` fails (some keys
    /// may have been deleted; clearing again finishes the job), [`Error::NotReplicated`]
    /// with [`replicated_invalidation`](crate::CacheBuilder::replicated_invalidation) as for
    /// an invalidation. While Redis is unreachable the error is returned: nothing was
    /// cleared.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// let cache = redis_cached::Cache::builder("mem://").prefix("myapp:").build().await?;
    /// let deleted: u64 = cache.clear().await?;
    /// assert_eq!(deleted, 0);
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<u64, Error> {
        let prefix = self.prefix();
        let mut glob = String::new();
        glob_escape(prefix, &mut glob);
        glob.push('*');
        let select = |key: &[u8]| key.starts_with(prefix.as_bytes());
        self.sweep("*", &glob, &select).await
    }

    /// Deletes every entry (and fill lease) of one `#[redis_cached]` function under this
    /// cache's prefix; returns how many keys it deleted. Tag versions are shared between
    /// functions and stay.
    ///
    /// `name` is the function's path as [`functions`](crate::functions) lists it
    /// (`my_app::users::get_user`) or any `::`-suffix of it (`users::get_user`,
    /// `get_user`). It walks the keyspace as [`Cache::clear`] does, with a `MATCH` pattern
    /// made from the function's key template (its text up to the first placeholder), and
    /// deletes only keys the template renders: `user:<id>` does not take
    /// `user:<id>:posts`'s keys. Keys longer than the
    /// [maximum key length](crate::CacheBuilder::max_key_len) are stored in a digest form
    /// that keeps only the template's leading text: those of every function whose template
    /// starts with the same text are deleted (a miss for the others, never a stale read).
    /// Progress is logged as for `clear` and counted in `redis_cached_cleared_keys_total`
    /// with the function's path.
    ///
    /// The guarantees are [`Cache::clear`]'s, for this function's entries. This process's
    /// near tier is emptied (all of it: its other entries are read from Redis again).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFunction`] (with the closest registered paths) when no function has
    /// that name, [`Error::AmbiguousFunction`] (with the candidates' paths) when several
    /// do; then nothing is deleted. Otherwise as [`Cache::clear`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// #[redis_cached::redis_cached(key = "user:<id>", ttl = 60)]
    /// async fn get_user(id: u64) -> String {
    ///     format!("user {id}")
    /// }
    ///
    /// let cache = redis_cached::Cache::connect("mem://").await?;
    /// cache.clear_function("get_user").await?;
    /// assert!(matches!(
    ///     cache.clear_function("get_usr").await,
    ///     Err(redis_cached::Error::UnknownFunction { .. })
    /// ));
    /// # Ok(()) }
    /// ```
    pub async fn clear_function(&self, name: &str) -> Result<u64, Error> {
        let (path, functions) = resolve(name)?;
        let prefix = self.prefix();
        let mut deleted = 0;
        // Several registrations under one path (a function generated twice): each template.
        for function in functions {
            let key = &function.key;
            let select = |stored: &[u8]| {
                stored
                    .strip_prefix(prefix.as_bytes())
                    .and_then(|rest| std::str::from_utf8(rest).ok())
                    .is_some_and(|rest| key.matches(rest) || key.may_have_digested(rest))
            };
            deleted += self.sweep(path, &key.scan_glob(prefix), &select).await?;
        }
        Ok(deleted)
    }

    /// Deletes the keys `select` picks among those `glob` matches, then empties this
    /// process's near tier (whatever the outcome: some keys may be gone) and logs.
    async fn sweep(
        &self,
        function: &'static str,
        glob: &str,
        select: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<u64, Error> {
        let inner = &self.inner;
        let prefix = self.prefix();
        let started = Instant::now();
        // Calls that start from now on must not join a degraded flight that began earlier.
        inner.flights.forget_where(|key| select(key.as_bytes()));
        let so_far = AtomicU64::new(0);
        let progress = |keys: u64| {
            if keys == 0 {
                return;
            }
            telemetry::cleared(function, keys);
            let before = so_far.fetch_add(keys, Ordering::Relaxed);
            let deleted = before + keys;
            if deleted / LOG_EVERY > before / LOG_EVERY {
                tracing::info!(function, prefix, deleted, "clearing the cache");
            }
        };
        let sweep = Sweep {
            glob,
            select,
            progress: &progress,
        };
        let result = inner.store.clear(&sweep).await;
        // After the deletion: flushing bumps every key's epoch, so a read that got an old
        // value before the deletion does not keep it.
        if let Some(near) = &inner.near {
            near.flush();
        }
        let elapsed = started.elapsed();
        match &result {
            Ok(deleted) => tracing::info!(function, prefix, deleted, ?elapsed, "cache cleared"),
            Err(error) => tracing::warn!(
                function,
                prefix,
                deleted = so_far.load(Ordering::Relaxed),
                ?elapsed,
                %error,
                "cache clear failed part-way"
            ),
        }
        result
    }
}

/// The registered function(s) `name` designates: its path and every registration under it.
fn resolve(name: &str) -> Result<(&'static str, Vec<&'static CachedFunction>), Error> {
    let cached = registry::functions().cached;
    let matching: Vec<&'static CachedFunction> = cached
        .iter()
        .copied()
        .filter(|function| names(function.path, name))
        .collect();
    // Sorted by path already.
    let mut paths: Vec<&'static str> = matching.iter().map(|function| function.path).collect();
    paths.dedup();
    match paths[..] {
        [path] => Ok((path, matching)),
        [] => Err(Error::UnknownFunction {
            name: name.to_owned(),
            closest: closest(name, cached.iter().map(|function| function.path)),
        }),
        _ => Err(Error::AmbiguousFunction {
            name: name.to_owned(),
            candidates: paths.into_iter().map(str::to_owned).collect(),
        }),
    }
}

/// Whether `name` is `path` or a `::`-suffix of it.
fn names(path: &str, name: &str) -> bool {
    path == name
        || path
            .strip_suffix(name)
            .is_some_and(|head| head.ends_with("::") && !name.starts_with(':'))
}

/// The paths closest to `name`, each compared by its last segments, as many as `name` has
/// (`get_usr` against `get_user`, `users::get_usr` against `users::get_user`), ignoring
/// case; only those within a third of the name's length in edits (at least 2), so that a
/// name like none of them suggests nothing.
fn closest(name: &str, paths: impl Iterator<Item = &'static str>) -> Vec<String> {
    let segments = name.split("::").count();
    let name = name.to_lowercase();
    let within = (name.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = paths
        .map(|path| {
            let parts: Vec<&str> = path.split("::").collect();
            let tail = parts[parts.len().saturating_sub(segments)..].join("::");
            (distance(&tail.to_lowercase(), &name), path)
        })
        .filter(|(edits, _)| *edits <= within)
        .collect();
    scored.sort();
    scored.dedup_by_key(|(_, path)| *path);
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, path)| path.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{distance, names};

    #[test]
    fn a_name_is_the_path_or_a_suffix_of_whole_segments() {
        assert!(names("app::users::get_user", "app::users::get_user"));
        assert!(names("app::users::get_user", "users::get_user"));
        assert!(names("app::users::get_user", "get_user"));
        assert!(!names("app::users::get_user", "user"));
        assert!(!names("app::users::get_user", "s::get_user"));
        assert!(!names("app::users::get_user", ":get_user"));
        assert!(!names("app::users::get_user", ""));
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("get_user", "get_user"), 0);
        assert_eq!(distance("get_usr", "get_user"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
