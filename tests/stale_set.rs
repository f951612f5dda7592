//! The stale-set race, checked (`scenarios::stale_set`) on a single node: once an
//! `#[invalidates]` call has returned, no call that starts afterwards returns a value
//! computed from a source read made before that write. With fill leases the checker finds no
//! violation, and a large share of the reads were served by the cache (a cache that stopped
//! caching under contention would be trivially fresh); with leases switched off it must find
//! some, which shows it can.
//!
//! The protected run is repeated with the near tier, on `mem://`, and (on servers before
//! Redis 7.0, such as the 6.2 `scripts/test` also runs the suite on) with the scripted
//! lookup that stands in for `SET .. NX GET` there.

mod harness;
mod scenarios;
mod support;

use redis_cached::{Cache, NearCache};
use scenarios::stale_set::{assert_fresh_and_cached, run_checker};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_after_invalidation_over_100k_operations() {
    let cache = support::redis_cache("stale-set").await;
    let lookup = if harness::native_lookup(&mut harness::raw_connection().await).await {
        "SET .. NX GET"
    } else {
        "the FETCH script (server before 7.0)"
    };
    eprintln!("lookup: {lookup}");
    assert_fresh_and_cached(&run_checker(cache, 100_000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_with_the_near_tier() {
    let cache = support::shared_builder("stale-set-near")
        .near_cache(NearCache::new(1 << 20))
        .build()
        .await
        .expect("redis answers");
    assert_fresh_and_cached(&run_checker(cache, 50_000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_on_mem() {
    let cache = Cache::builder("mem://")
        .build()
        .await
        .expect("mem:// builds");
    assert_fresh_and_cached(&run_checker(cache, 50_000).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_finds_stale_reads_without_fill_leases() {
    let cache = support::shared_builder("stale-set-off")
        .without_fill_leases()
        .build()
        .await
        .expect("redis answers");
    let checked = run_checker(cache, 20_000).await;
    assert!(
        checked.violations > 0,
        "the checker should see the classic race"
    );
}
