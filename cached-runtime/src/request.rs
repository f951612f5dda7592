//! The scopes a request opens around the cached calls it makes: a [`memo`] (a call of a key
//! already read in the scope is answered from the scope, without a round trip) and the
//! entries read, from which [`with_entity_tag`] derives an HTTP validator.
//!
//! Both live in one task-local, so that a call outside every scope pays one `try_with`,
//! and inside a scope one lock per call. A call records what it served: the stored bytes
//! (or the decoded value, for a function whose near-tier entries are decoded, see
//! `near_clone`), the tags it carries (for tag invalidations) and an identity of the entry,
//! a digest of its key and stored bytes. A call that served no entry (a bypass, a batch, an
//! `Err` shared by another caller's fill) records that no validator can be given.

use crate::Cache;
use crate::cache::Inner;
use crate::entry::Entry;
use crate::near::NearValue;
use crate::private::Context;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

tokio::task_local! {
    static REQUEST: Request;
}

/// What the scopes around a call collect. Each part is shared by the calls of its scope and
/// linked to the enclosing scope's, which invalidations and reads reach too.
#[derive(Clone, Default)]
pub(crate) struct Request {
    memo: Option<Arc<Shared<Memo>>>,
    reads: Option<Arc<Shared<Reads>>>,
}

/// One scope's part, and the enclosing scope's.
struct Shared<T> {
    this: Mutex<T>,
    outer: Option<Arc<Shared<T>>>,
}

impl<T> Shared<T> {
    fn new(this: T, outer: Option<Arc<Shared<T>>>) -> Arc<Shared<T>> {
        Arc::new(Shared {
            this: Mutex::new(this),
            outer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.this.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// This scope's part and every enclosing one's, innermost first.
    fn chain(self: &Arc<Self>) -> impl Iterator<Item = &Arc<Shared<T>>> {
        std::iter::successors(Some(self), |scope| scope.outer.as_ref())
    }
}

/// The entries a memo scope holds, per cache and key.
#[derive(Default)]
struct Memo {
    caches: Vec<(Cache, HashMap<String, Kept>)>,
}

/// One entry a call in the scope was served.
struct Kept {
    value: NearValue,
    /// The call's rendered tag keys: invalidating one evicts the entry.
    tags: Box<[String]>,
    /// The entry's digest; `None` for stored bytes until a validator asks for it (it is then
    /// taken from `value`), or for a decoded near-tier value, which has none.
    identity: Option<Identity>,
    /// When the entry expires in Redis, if known.
    expires: Option<Instant>,
}

/// A digest of an entry's key and stored bytes: it changes whenever the entry does.
type Identity = [u8; 16];

/// The identities of the entries the calls in a scope were served.
#[derive(Default)]
struct Reads {
    identities: Vec<Identity>,
    /// A call served no known entry: no validator.
    unknown: bool,
    /// The earliest expiry of the entries read, and whether one's was not known.
    expires: Option<Instant>,
    expiry_unknown: bool,
    /// Lookups in the scope ask Redis for their entries' remaining TTL.
    want_expiry: bool,
}

/// Runs `future` in a memo scope: inside it, a cached call of a key (of one cache) that a
/// call in the scope was already served is answered with what that call was served, without
/// a round trip to Redis and without running the body, however the entry changed in Redis
/// meanwhile (repeatable reads within one request, as Laravel's `Cache::memo()` or Rails'
/// local cache).
///
/// - **What is recorded:** what a call returned from the cache: a hit (Redis or the near
///   tier), the value a miss stored, a value another caller's fill gave it, a stale value.
///   A call that bypassed the cache (no cache installed, Redis unreachable, the key's
///   invalidation still pending), a value that was not stored (an `Err`, a `None` without
///   `cache_none`) and batch functions record nothing: the next call in the scope works as
///   outside one. A call with `refresh = true` skips the scope, and records what it stored.
/// - **Invalidations:** an `#[invalidates]`, [`Cache::invalidate`] or
///   [`Cache::invalidate_tags`] made inside the scope evicts the keys it deletes, and the
///   entries carrying a tag it deletes, from this scope and every enclosing one, so a call
///   after a write in the same request reads again.
/// - **Scopes:** the innermost scope holds; a task spawned inside (`tokio::spawn`) does not
///   inherit it. A memo hit counts as a hit (`Outcome::Hit`, the hit metrics). The values
///   are held until the scope ends: open one per request, not per process.
///
/// The axum [`CacheStatusLayer`](https://docs.rs/redis-cached/latest/redis_cached/axum/struct.CacheStatusLayer.html)
/// opens one per request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use redis_cached::{memo, redis_cached};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static READS: AtomicU32 = AtomicU32::new(0);
///
/// #[redis_cached(key = "answer", ttl = 60)]
/// async fn answer() -> u32 {
///     READS.fetch_add(1, Ordering::Relaxed)
/// }
///
/// redis_cached::init("mem://").await?;
/// let (first, second) = memo(async { (answer().await, answer().await) }).await;
/// assert_eq!(first, second);
/// # Ok(()) }
/// ```
pub async fn memo<F: Future>(future: F) -> F::Output {
    let mut request = current().unwrap_or_default();
    request.memo = Some(Shared::new(Memo::default(), request.memo.take()));
    REQUEST.scope(request, future).await
}

/// Runs `future` and returns its output with a validator of the cached entries the calls
/// inside it were served, an HTTP weak entity tag (`W/"..."`, RFC 9110 §8.8.3), or `None`
/// if it made no cached call or one of them served no known entry (see below).
///
/// The tag is a digest of the keys and stored bytes of the entries read, in any order: it
/// changes whenever one of them is rewritten (a refresh that stores equal bytes keeps it),
/// and is the same in every process. It stands for the response only when the response is
/// made of those entries alone: a handler that also reads data outside the cache must not
/// be given one.
///
/// `None` when a call bypassed the cache (no cache, Redis unreachable, an invalidation
/// pending), was a batch function, or returned a value that was not stored (an `Err`, a
/// `None` without `cache_none`). Nested scopes: each enclosing scope sees the calls of the
/// inner ones too. A task spawned inside does not inherit the scope.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use redis_cached::{redis_cached, with_entity_tag};
///
/// #[redis_cached(key = "answer", ttl = 60)]
/// async fn answer() -> u32 { 42 }
///
/// redis_cached::init("mem://").await?;
/// let (_, first) = with_entity_tag(answer()).await; // a miss: the value it stored
/// let (_, again) = with_entity_tag(answer()).await; // a hit: the same entry
/// assert_eq!(first, again);
/// assert!(first.unwrap().as_str().starts_with("W/\""));
/// assert_eq!(with_entity_tag(async {}).await.1, None);
/// # Ok(()) }
/// ```
pub async fn with_entity_tag<F: Future>(future: F) -> (F::Output, Option<EntityTag>) {
    read_scope(future, false).await
}

/// [`with_entity_tag`], and the tag knows how long the entries it stands for stay in Redis
/// ([`EntityTag::max_age`]): each lookup in the scope asks Redis for its entry's remaining
/// TTL, in the same round trip (a script instead of the native `SET .. NX GET`, so some
/// more work in Redis per hit).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// use redis_cached::{redis_cached, with_entity_tag_and_max_age};
///
/// #[redis_cached(key = "answer", ttl = 60)]
/// async fn answer() -> u32 { 42 }
///
/// redis_cached::init("mem://").await?;
/// let (_, tag) = with_entity_tag_and_max_age(answer()).await; // the value it stored
/// let max_age = tag.unwrap().max_age().unwrap();
/// assert!(max_age.as_secs() <= 60);
/// # Ok(()) }
/// ```
pub async fn with_entity_tag_and_max_age<F: Future>(future: F) -> (F::Output, Option<EntityTag>) {
    read_scope(future, true).await
}

async fn read_scope<F: Future>(future: F, want_expiry: bool) -> (F::Output, Option<EntityTag>) {
    let mut request = current().unwrap_or_default();
    let reads = Reads {
        want_expiry,
        ..Reads::default()
    };
    let reads = Shared::new(reads, request.reads.take());
    request.reads = Some(reads.clone());
    let output = REQUEST.scope(request, future).await;
    let tag = EntityTag::of(&mut reads.lock());
    (output, tag)
}

/// A weak entity tag (`W/"<32 hex digits>"`) of the cached entries a request read: see
/// [`with_entity_tag`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
/// # use redis_cached::{redis_cached, with_entity_tag};
/// # #[redis_cached(key = "answer", ttl = 60)]
/// # async fn answer() -> u32 { 42 }
/// # redis_cached::init("mem://").await?;
/// let (_, tag) = with_entity_tag(answer()).await;
/// let tag = tag.unwrap();
/// assert!(tag.matches(tag.as_str()));
/// assert!(tag.matches("*"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EntityTag {
    tag: String,
    /// The earliest expiry of the entries, when each one's is known.
    expires: Option<Instant>,
}

/// Tags are equal when they name the same entries, however long those have left.
impl PartialEq for EntityTag {
    fn eq(&self, other: &EntityTag) -> bool {
        self.tag == other.tag
    }
}

impl Eq for EntityTag {}

impl std::hash::Hash for EntityTag {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tag.hash(state);
    }
}

impl EntityTag {
    /// How long the entries the tag stands for stay in Redis (the shortest remaining TTL):
    /// known from [`with_entity_tag_and_max_age`] when every entry read came from Redis or a
    /// fill (not for a near-tier hit or a value another caller's fill handed over); `None`
    /// otherwise.
    pub fn max_age(&self) -> Option<Duration> {
        let expires = self.expires?;
        Some(expires.saturating_duration_since(Instant::now()))
    }

    fn of(reads: &mut Reads) -> Option<EntityTag> {
        if reads.unknown || reads.identities.is_empty() {
            return None;
        }
        // In any order: calls made concurrently complete in any order.
        reads.identities.sort_unstable();
        reads.identities.dedup();
        let mut digest = Sha256::new();
        for identity in &reads.identities {
            digest.update(identity);
        }
        let mut tag = String::with_capacity(36);
        tag.push_str("W/\"");
        for byte in &digest.finalize()[..16] {
            tag.push(hex(byte >> 4));
            tag.push(hex(byte & 0xF));
        }
        tag.push('"');
        let expires = reads.expires.filter(|_| !reads.expiry_unknown);
        Some(EntityTag { tag, expires })
    }

    /// The tag as an `ETag` header value: `W/"..."`.
    pub fn as_str(&self) -> &str {
        &self.tag
    }

    /// Whether an `If-None-Match` header value names this tag: `*`, or a comma-separated
    /// list of entity tags one of which has the same opaque tag (the weak comparison of RFC
    /// 9110 §8.8.3.2, which `If-None-Match` uses).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis_cached::Error> {
    /// # use redis_cached::{redis_cached, with_entity_tag};
    /// # #[redis_cached(key = "answer", ttl = 60)]
    /// # async fn answer() -> u32 { 42 }
    /// # redis_cached::init("mem://").await?;
    /// let tag = with_entity_tag(answer()).await.1.unwrap();
    /// let strong = tag.as_str().trim_start_matches("W/");
    /// assert!(tag.matches(&format!("\"other\", {strong}")));
    /// assert!(!tag.matches("\"other\""));
    /// # Ok(()) }
    /// ```
    pub fn matches(&self, if_none_match: &str) -> bool {
        let opaque = self.tag.trim_start_matches("W/");
        if_none_match.trim() == "*"
            || if_none_match
                .split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == opaque)
    }
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

fn hex(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble)])
}

/// The scopes around the current call; `None` outside every scope (one `try_with`).
pub(crate) fn current() -> Option<Request> {
    REQUEST.try_with(Request::clone).ok()
}

impl Request {
    /// What a call of `cx`'s key in this memo scope was served, if any, as `read` takes it
    /// out of what was kept; recorded as read again.
    pub(crate) fn recall<T>(
        &self,
        cx: &Context<'_, T>,
        read: impl FnOnce(&NearValue) -> Option<Entry<T>>,
    ) -> Option<Entry<T>> {
        let memo = self.memo.as_ref()?;
        let (entry, identity, expires) = {
            let memo = memo.lock();
            let kept = memo.entries(cx.cache)?.get(cx.key)?;
            let identity = match (&kept.value, self.reads.is_some()) {
                (NearValue::Bytes(bytes), true) if kept.identity.is_none() => {
                    Some(identity(cx.key, bytes))
                }
                _ => kept.identity,
            };
            (read(&kept.value)?, identity, kept.expires)
        };
        self.read(identity, expires);
        Some(entry)
    }

    /// Whether a lookup in these scopes is to ask for its entry's remaining TTL.
    pub(crate) fn wants_ttl(&self) -> bool {
        self.reads
            .as_ref()
            .is_some_and(|reads| reads.chain().any(|scope| scope.lock().want_expiry))
    }

    /// Records that the call of `cx` was served the stored `bytes`, which decoded to `entry`
    /// and live `ttl` more in Redis (if known).
    pub(crate) fn keep<T>(
        &self,
        cx: &Context<'_, T>,
        (bytes, entry): (&[u8], Entry<&T>),
        ttl: Option<Duration>,
    ) {
        // The digest only where a validator is asked for, or a memo holds no bytes to take it
        // from later: a memo of every request must not hash every value it is served.
        let mut digest = self.reads.is_some().then(|| identity(cx.key, bytes));
        let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        self.read(digest, expires);
        if self.memo.is_some() {
            let held = cx.codec.hold(bytes, entry);
            if let NearValue::Decoded(_) = held {
                digest = digest.or_else(|| Some(identity(cx.key, bytes)));
            }
            self.remember(cx, held, (digest, expires));
        }
    }

    /// Records that the call of `cx` was served `held` by the near tier: decoded values
    /// have no stored bytes to identify them.
    pub(crate) fn keep_near<T>(&self, cx: &Context<'_, T>, held: NearValue) {
        let identity = match &held {
            NearValue::Bytes(bytes) if self.reads.is_some() => Some(identity(cx.key, bytes)),
            _ => None,
        };
        self.read(identity, None);
        self.remember(cx, held, (identity, None));
    }

    fn remember<T>(
        &self,
        cx: &Context<'_, T>,
        value: NearValue,
        (identity, expires): (Option<Identity>, Option<Instant>),
    ) {
        let (Some(memo), Some((cache, _))) = (&self.memo, &cx.call.target) else {
            return;
        };
        let kept = Kept {
            value,
            tags: cx.tags.keys.into(),
            identity,
            expires,
        };
        memo.lock()
            .entries_mut(cache)
            .insert(cx.key.to_owned(), kept);
    }

    /// Records an entry read, and when it expires, in every reads scope around the call
    /// (`None`: not known).
    fn read(&self, identity: Option<Identity>, expires: Option<Instant>) {
        let Some(reads) = &self.reads else {
            return;
        };
        for scope in reads.chain() {
            let mut reads = scope.lock();
            match identity {
                Some(identity) => reads.identities.push(identity),
                None => reads.unknown = true,
            }
            match expires {
                Some(expires) => {
                    reads.expires = Some(reads.expires.map_or(expires, |at| at.min(expires)));
                }
                None => reads.expiry_unknown = true,
            }
        }
    }
}

impl Memo {
    /// Where `cache`'s entries are.
    fn position(&self, cache: &Inner) -> Option<usize> {
        let same = |(kept, _): &(Cache, _)| std::ptr::eq(&*kept.inner, cache);
        self.caches.iter().position(same)
    }

    fn entries(&self, cache: &Inner) -> Option<&HashMap<String, Kept>> {
        Some(&self.caches[self.position(cache)?].1)
    }

    fn entries_mut(&mut self, cache: &Cache) -> &mut HashMap<String, Kept> {
        let at = self.position(&cache.inner).unwrap_or_else(|| {
            self.caches.push((cache.clone(), HashMap::new()));
            self.caches.len() - 1
        });
        &mut self.caches[at].1
    }
}

/// Records, where the call of `cx` runs in a scope, that it was served the stored `bytes`
/// (see [`Request::keep`]).
pub(crate) fn keep<T>(cx: &Context<'_, T>, bytes: &[u8], entry: Entry<&T>, ttl: Option<Duration>) {
    if let Some(request) = current() {
        request.keep(cx, (bytes, entry), ttl);
    }
}

/// `cx.decode(bytes)`, recorded (see [`keep`]) when it decodes: for a call served those bytes.
pub(crate) fn decode_kept<T>(cx: &Context<'_, T>, bytes: &[u8]) -> Option<Entry<T>> {
    let entry = cx.decode(bytes)?;
    keep(cx, bytes, entry.as_ref(), None);
    Some(entry)
}

/// Records, where a call runs in a scope, that it was served no known entry (a bypass):
/// no validator for the scope.
pub(crate) fn unknown() {
    let _ = REQUEST.try_with(|request| request.read(None, None));
}

/// Evicts `keys` (rendered keys and tag keys, as [`Cache::delete`] takes them) of `cache`,
/// and the entries carrying one of those tags, from the memo scopes around the caller.
pub(crate) fn evict(cache: &Inner, keys: &[String]) {
    let _ = REQUEST.try_with(|request| {
        let Some(memo) = &request.memo else {
            return;
        };
        for scope in memo.chain() {
            let mut memo = scope.lock();
            let Some(at) = memo.position(cache) else {
                continue;
            };
            memo.caches[at].1.retain(|key, kept| {
                !keys.contains(key) && !kept.tags.iter().any(|tag| keys.contains(tag))
            });
        }
    });
}

/// A digest of `key` and the stored `bytes`, the first 16 bytes of a SHA-256.
fn identity(key: &str, bytes: &[u8]) -> Identity {
    let mut digest = Sha256::new();
    digest.update((key.len() as u64).to_le_bytes());
    digest.update(key);
    digest.update(bytes);
    let mut identity = [0; 16];
    identity.copy_from_slice(&digest.finalize()[..16]);
    identity
}
