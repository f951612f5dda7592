//! The stale-set race, checked (`scenarios::stale_set`) on a single node: with fill leases
//! the checker finds no violation; with them switched off it must find some, which shows
//! it can.

mod common;
mod scenarios;
mod support;

use scenarios::stale_set::run_checker;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_stale_reads_after_invalidation_over_100k_operations() {
    let cache = common::redis_cache("stale-set").await;
    let violations = run_checker(cache, 100_000).await;
    assert_eq!(violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checker_finds_stale_reads_without_fill_leases() {
    let cache = common::shared_builder("stale-set-off")
        .without_fill_leases()
        .build()
        .await
        .expect("redis answers");
    let violations = run_checker(cache, 20_000).await;
    assert!(violations > 0, "the checker should see the classic race");
}
