//! Stale-while-revalidate, stale-if-error, refresh ahead and run-time TTLs against a real
//! redis-server (the scenarios run on `mem://`, a Cluster and Sentinel too), and what they
//! cost in commands.

mod common;
mod scenarios;
mod support;

scenarios::scenario_tests!(freshness, common::redis_cache);
