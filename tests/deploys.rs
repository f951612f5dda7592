//! Deploys that change what a function stores or computes: two builds of one struct (here
//! two modules sharing one Redis and one key template), and two versions of one function.
//! Each entry carries its stored type's shape fingerprint and its function's `version`; an
//! entry of another shape or version is a miss, never decoded into a wrong value.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, redis_cached, with_outcome};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The build before the deploy.
mod before {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
    }

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub enum Status {
        Active,
        Suspended,
    }

    #[redis_cached(key = "deploy:user:<id>", ttl = 60, cache = cache)]
    pub async fn user(cache: &Cache, id: u64) -> User {
        User {
            id,
            name: "Ada".into(),
        }
    }

    #[redis_cached(key = "deploy:status:<id>", ttl = 60, cache = cache)]
    pub async fn status(cache: &Cache, id: u64) -> Status {
        let _ = id;
        Status::Suspended
    }
}

/// A field added with `#[serde(default)]`: the old entries decode, with the default.
mod added {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: u64,
        pub name: String,
        #[serde(default)]
        pub email: String,
    }

    #[redis_cached(key = "deploy:user:<id>", ttl = 60, cache = cache)]
    pub async fn user(cache: &Cache, id: u64) -> User {
        User {
            id,
            name: "Ada".into(),
            email: "ada@example.com".into(),
        }
    }
}

/// A field renamed, the new name defaulted: the old entries decode, with the default.
mod renamed {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: u64,
        #[serde(default)]
        pub full_name: String,
    }

    #[redis_cached(key = "deploy:user:<id>", ttl = 60, cache = cache)]
    pub async fn user(cache: &Cache, id: u64) -> User {
        User {
            id,
            full_name: "Ada Lovelace".into(),
        }
    }
}

/// A field retyped: `u64` to `i64` decodes the old entries without complaint.
mod retyped {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct User {
        pub id: i64,
        pub name: String,
    }

    #[redis_cached(key = "deploy:user:<id>", ttl = 60, cache = cache)]
    pub async fn user(cache: &Cache, id: u64) -> User {
        User {
            id: -(id as i64),
            name: "Ada".into(),
        }
    }
}

/// An enum that gained a variant.
mod more_variants {
    use super::*;

    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub enum Status {
        Active,
        Suspended,
        Deleted,
    }

    #[redis_cached(key = "deploy:status:<id>", ttl = 60, cache = cache)]
    pub async fn status(cache: &Cache, id: u64) -> Status {
        let _ = id;
        Status::Deleted
    }
}

/// The first call of `call` after another build wrote the key: a miss, its own value.
async fn miss<T, F: std::future::Future<Output = T>>(call: F) -> T {
    let (value, outcome) = with_outcome(call).await;
    assert_eq!(outcome, Some(Outcome::Miss));
    value
}

/// Two processes of one topology sharing a prefix (on `mem://`, one store: the same cache).
async fn two_processes(topology: &str, test: &str) -> (Cache, Cache) {
    let url = match topology {
        "redis" => harness::shared_url().to_owned(),
        "cluster" => support::shared_cluster().url(),
        "sentinel" => support::shared_sentinel().url(),
        _ => {
            let cache = support::mem_cache().await;
            return (cache.clone(), cache);
        }
    };
    let first = support::topology_builder(&url, test).build().await;
    let first = first.expect("the topology answers");
    let second = support::topology_builder(&url, test)
        .prefix(first.prefix())
        .build()
        .await
        .expect("the topology answers");
    (first, second)
}

const TOPOLOGIES: [&str; 4] = ["redis", "cluster", "sentinel", "mem"];

#[tokio::test(flavor = "multi_thread")]
async fn each_change_of_shape_is_a_miss_not_a_wrong_value() {
    for topology in TOPOLOGIES {
        let (old, new) = two_processes(topology, "deploy-shapes").await;
        miss(before::user(&old, 1)).await;
        let added = miss(added::user(&new, 1)).await;
        assert_eq!(added.email, "ada@example.com", "{topology}");
        // And back: the old build reads the new entry as a miss too (a rolling deploy).
        miss(before::user(&old, 1)).await;
        let renamed = miss(renamed::user(&new, 1)).await;
        assert_eq!(renamed.full_name, "Ada Lovelace", "{topology}");
        miss(before::user(&old, 1)).await;
        assert_eq!(miss(retyped::user(&new, 1)).await.id, -1, "{topology}");
        miss(before::status(&old, 1)).await;
        let status = miss(more_variants::status(&new, 1)).await;
        assert_eq!(status, more_variants::Status::Deleted, "{topology}");
        // Each build hits its own entries.
        let (_, outcome) = with_outcome(more_variants::status(&new, 1)).await;
        assert_eq!(outcome, Some(Outcome::Hit), "{topology}");
    }
}

#[tokio::test]
async fn without_fingerprints_an_old_entry_decodes_into_a_wrong_value() {
    // The control: what each entry's fingerprint prevents.
    let cache = support::shared_builder("deploy-unfingerprinted")
        .without_shape_fingerprints()
        .build()
        .await
        .expect("redis answers");
    miss(before::user(&cache, 2)).await;
    let (user, outcome) = with_outcome(added::user(&cache, 2)).await;
    assert_eq!(outcome, Some(Outcome::Hit));
    assert_eq!(
        user.email, "",
        "the old entry, decoded with the new field's default"
    );
}

static OLD_RUNS: AtomicUsize = AtomicUsize::new(0);
static NEW_RUNS: AtomicUsize = AtomicUsize::new(0);

mod old {
    use super::*;

    #[redis_cached(key = "deploy:price:<id>", ttl = 60, cache = cache)]
    pub async fn price(cache: &Cache, id: u64) -> String {
        OLD_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{id} in dollars")
    }
}

mod new {
    use super::*;

    #[redis_cached(key = "deploy:price:<id>", ttl = 60, cache = cache, version = 2)]
    pub async fn price(cache: &Cache, id: u64) -> String {
        NEW_RUNS.fetch_add(1, Ordering::SeqCst);
        format!("{id} in cents")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn during_a_rolling_deploy_versions_never_serve_each_other() {
    for topology in TOPOLOGIES {
        // An old and a new build calling one key in turn.
        let (old_process, new_process) = two_processes(topology, "deploy-versions").await;
        let (old_runs, new_runs) = (
            OLD_RUNS.load(Ordering::SeqCst),
            NEW_RUNS.load(Ordering::SeqCst),
        );
        for round in 0..10 {
            let (price, outcome) = with_outcome(old::price(&old_process, 7)).await;
            assert_eq!(price, "7 in dollars");
            // Past the first round the key holds the new version's entry: left in place,
            // the old version's call runs its body (a miss) without storing.
            if round > 0 {
                assert_eq!(outcome, Some(Outcome::Miss), "{topology}");
            }
            assert_eq!(new::price(&new_process, 7).await, "7 in cents");
        }
        // The new version overwrote the old entry once, and hits it since; the old version
        // leaves the later version's entry in place and runs its body on each call.
        assert_eq!(NEW_RUNS.load(Ordering::SeqCst) - new_runs, 1, "{topology}");
        assert_eq!(OLD_RUNS.load(Ordering::SeqCst) - old_runs, 10, "{topology}");
        let (_, outcome) = with_outcome(new::price(&new_process, 7)).await;
        assert_eq!(outcome, Some(Outcome::Hit), "{topology}");
    }
}
