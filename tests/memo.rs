//! The request scopes, against a real redis-server: [`memo`] (a key read twice in a scope
//! is answered from the scope, with what the first call was served) and [`with_entity_tag`]
//! (a validator of the entries read). The round trips a memo saves are counted in
//! `round_trips.rs`; the axum layers in `axum_integration.rs`.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, memo, redis_cached, with_entity_tag, with_outcome};
use std::collections::HashMap;
use support::{Versions, item, write_item};

/// Two handles on one prefix: a second process, as far as the scope can tell.
async fn two_processes(test: &str) -> (Cache, Cache) {
    let prefix = support::unique_prefix(test);
    let handle = || {
        Cache::builder(harness::shared_url())
            .prefix(prefix.clone())
            .build()
    };
    let (this, other) = (handle().await, handle().await);
    (
        this.expect("the shared redis-server answers"),
        other.expect("the shared redis-server answers"),
    )
}

/// `item(id)` carrying the tag `items`.
#[redis_cached(key = "tagged:<id>", ttl = 600, tags = ["items"], cache = cache)]
async fn tagged_item(cache: &Cache, source: &Versions, id: u64) -> (u64, u64) {
    (id, source.read(id))
}

/// A batch read of `item:<id>` keys.
#[redis_cached(key = "item:<ids>", ttl = 600, batch = ids, cache = cache)]
async fn items(cache: &Cache, source: &Versions, ids: &[u64]) -> HashMap<u64, (u64, u64)> {
    ids.iter().map(|&id| (id, (id, source.read(id)))).collect()
}

/// Mutation: `Request::recall` returning `None` (no memo lookup): the second call reads
/// the version the other process wrote.
#[tokio::test]
async fn a_scope_serves_what_its_first_call_got_though_another_process_changed_it() {
    let (cache, other) = two_processes("memo_repeatable").await;
    let source = Versions::default();
    let (first, second) = memo(async {
        let first = item(&cache, &source, 1).await;
        // Another process writes and invalidates, then reads the new version into Redis.
        write_item(&other, &source, 1).await;
        assert_eq!(item(&other, &source, 1).await, (1, 1));
        (first, with_outcome(item(&cache, &source, 1)).await)
    })
    .await;
    assert_eq!(first, (1, 0));
    assert_eq!(
        second,
        ((1, 0), Some(Outcome::Hit)),
        "served from the scope"
    );
    assert_eq!(source.reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Outside the scope, the entry as Redis holds it.
    assert_eq!(item(&cache, &source, 1).await, (1, 1));
}

/// Mutation: no `request::evict` in `Cache::delete`: the call after the write is served
/// the version read before it.
#[tokio::test]
async fn an_invalidation_in_the_scope_makes_the_next_call_read_again() {
    let (cache, _) = two_processes("memo_invalidation").await;
    let source = Versions::default();
    let read = memo(async {
        assert_eq!(item(&cache, &source, 2).await, (2, 0));
        write_item(&cache, &source, 2).await;
        item(&cache, &source, 2).await
    })
    .await;
    assert_eq!(read, (2, 1), "read again after the write");
}

/// Mutation: `request::evict` keeping entries whose tags were deleted (retain on the key
/// only): the call after `invalidate_tags` is served the version read before it.
#[tokio::test]
async fn a_tag_invalidation_in_the_scope_evicts_the_entries_carrying_it() {
    let (cache, _) = two_processes("memo_tags").await;
    let source = Versions::default();
    let read = memo(async {
        assert_eq!(tagged_item(&cache, &source, 3).await, (3, 0));
        source.write(3);
        cache.invalidate_tags(&["items"]).await.expect("deleted");
        tagged_item(&cache, &source, 3).await
    })
    .await;
    assert_eq!(read, (3, 1));
}

/// An invalidation in a nested scope evicts from the enclosing one too; the nested scope
/// starts empty (the innermost holds). Mutation: `evict` reaching the innermost scope only
/// (no `chain()`): the outer scope serves the version read before the write.
#[tokio::test]
async fn nested_scopes_start_empty_and_invalidations_reach_the_enclosing_ones() {
    let (cache, other) = two_processes("memo_nested").await;
    let source = Versions::default();
    let (inner, outer) = memo(async {
        assert_eq!(item(&cache, &source, 4).await, (4, 0));
        write_item(&other, &source, 4).await;
        let inner = memo(async {
            let inner = item(&cache, &source, 4).await;
            write_item(&cache, &source, 4).await;
            inner
        })
        .await;
        (inner, item(&cache, &source, 4).await)
    })
    .await;
    assert_eq!(inner, (4, 1), "the nested scope reads Redis");
    assert_eq!(
        outer,
        (4, 2),
        "the write inside evicted the outer scope's entry"
    );
}

/// The same entry gives the same tag on a miss and on a later hit; a rewritten entry
/// another. Mutations: a fill recording no identity (`request::keep` in `fill` removed:
/// no tag on the miss); an identity of the key only (the tag does not move on a write).
#[tokio::test]
async fn the_entity_tag_is_the_entries_and_moves_when_one_is_rewritten() {
    let (cache, _) = two_processes("etag_entries").await;
    let source = Versions::default();
    let both = || async {
        (
            item(&cache, &source, 5).await,
            item(&cache, &source, 6).await,
        )
    };
    let (_, missed) = with_entity_tag(both()).await;
    let (_, hit) = with_entity_tag(both()).await;
    let missed = missed.expect("a miss stores what it serves: a known entry");
    assert_eq!(Some(&missed), hit.as_ref(), "the same entries");
    assert!(missed.as_str().starts_with("W/\"") && missed.as_str().len() == 36);

    write_item(&cache, &source, 6).await;
    let (_, rewritten) = with_entity_tag(both()).await;
    assert_ne!(rewritten, Some(missed.clone()));
    assert!(rewritten.is_some());
    // Read in another order: the same tag.
    let (_, reversed) = with_entity_tag(async {
        (
            item(&cache, &source, 6).await,
            item(&cache, &source, 5).await,
        )
    })
    .await;
    assert_eq!(reversed, rewritten);
}

/// No tag when a call served no known entry. Mutations: no `request::unknown()` in the
/// no-cache path of `cached_with` (a tag from the other call alone), in the batch lookup.
#[tokio::test]
async fn no_entity_tag_when_a_call_bypassed_the_cache_or_was_a_batch() {
    let (cache, _) = two_processes("etag_bypass").await;
    let source = Versions::default();
    // No cache is installed in this binary: `uncached` bypasses.
    #[redis_cached(key = "uncached", ttl = 60)]
    async fn uncached() -> u32 {
        7
    }
    let (_, tag) = with_entity_tag(async {
        item(&cache, &source, 7).await;
        uncached().await
    })
    .await;
    assert_eq!(tag, None);
    let (_, tag) = with_entity_tag(async {
        item(&cache, &source, 7).await;
        items(&cache, &source, &[7, 8]).await
    })
    .await;
    assert_eq!(tag, None);
    assert!(with_entity_tag(item(&cache, &source, 7)).await.1.is_some());
}

/// A memo hit records its entry in the entity tag scope inside the memo scope, as a hit
/// would. Mutation: `Request::recall` not recording the read (no `self.read(identity)`):
/// no tag.
#[tokio::test]
async fn memo_hits_count_in_the_entity_tag() {
    let (cache, _) = two_processes("etag_memo").await;
    let source = Versions::default();
    item(&cache, &source, 9).await;
    let (_, plain) = with_entity_tag(item(&cache, &source, 9)).await;
    let memoized = memo(async {
        item(&cache, &source, 9).await;
        with_entity_tag(with_outcome(item(&cache, &source, 9))).await
    })
    .await;
    assert!(plain.is_some());
    assert_eq!(memoized, (((9, 0), Some(Outcome::Hit)), plain));
}
