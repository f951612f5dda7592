//! A slot migrating between primaries while keys sharing its hash tag are invalidated, on a
//! real Cluster, step by step as `redis-cli --cluster reshard` does it: `CLUSTER SETSLOT ..
//! IMPORTING` on the target, `.. MIGRATING` on the source, `MIGRATE .. KEYS` of some keys,
//! then the rest and `CLUSTER SETSLOT .. NODE`. Halfway, a tenant's keys live on both nodes:
//! a lookup of one is answered by the source or redirected (`ASK`); one `UNLINK` of all of
//! them is refused by the source with `TRYAGAIN` (some of its keys are gone) for as long as
//! the migration lasts, which redis-rs's retries do not outlast. The invalidation must still
//! delete every key, on both nodes, and tell its caller no error.

mod harness;
mod support;

use harness::cluster::RedisCluster;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{bump, runs};

const TIMEOUT: Duration = Duration::from_secs(1);

#[redis_cached(key = "#{tenant:<tenant>}:user:<id>", ttl = 600, cache = cache)]
async fn tenant_user(cache: &Cache, counter: &AtomicUsize, tenant: &str, id: u64) -> String {
    bump(counter);
    format!("{tenant}/{id}")
}

/// Invalidates six of a tenant's users at once: one `UNLINK` (one slot).
#[invalidates(
    "#{tenant:<tenant>}:user:0",
    "#{tenant:<tenant>}:user:1",
    "#{tenant:<tenant>}:user:2",
    "#{tenant:<tenant>}:user:3",
    "#{tenant:<tenant>}:user:4",
    "#{tenant:<tenant>}:user:5",
    cache = cache
)]
async fn rename_tenant(cache: &Cache, tenant: &str) {
    let _ = tenant;
}

/// `tenant_user("7", id)`, checked to be right and bounded, with its outcome.
async fn user(cache: &Cache, counter: &AtomicUsize, id: u64) -> Option<Outcome> {
    let started = Instant::now();
    let (value, outcome) = with_outcome(tenant_user(cache, counter, "7", id)).await;
    assert_eq!(value, format!("7/{id}"));
    let elapsed = started.elapsed();
    assert!(elapsed < TIMEOUT, "tenant_user(7, {id}) took {elapsed:?}");
    outcome
}

/// Of `keys`, those the node behind `redis` holds (`ASKING` first: the target of a
/// migration answers for an importing slot only then; the source redirects the keys it no
/// longer holds).
async fn held(redis: &mut MultiplexedConnection, keys: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for key in keys {
        let exists: redis::RedisResult<((), u64)> = redis::pipe()
            .cmd("ASKING")
            .cmd("EXISTS")
            .arg(key)
            .query_async(redis)
            .await;
        match exists {
            Ok((_, 1)) => found.push(key.clone()),
            Ok(_) => {}
            // The source of a migration redirects a key it no longer holds.
            Err(error) if error.to_string().contains("Ask") => {}
            Err(error) => panic!("EXISTS {key}: {error}"),
        }
    }
    found
}

async fn cluster_cmd(redis: &mut MultiplexedConnection, args: &[&str]) {
    let () = redis::cmd("CLUSTER")
        .arg(args)
        .query_async(redis)
        .await
        .unwrap_or_else(|error| panic!("CLUSTER {args:?}: {error}"));
}

async fn node_id(redis: &mut MultiplexedConnection) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query_async(redis)
        .await
        .expect("CLUSTER MYID")
}

/// `MIGRATE` of `keys` from the node behind `source` to the one on `port`.
async fn migrate(source: &mut MultiplexedConnection, port: u16, keys: &[String]) {
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(keys)
        .query_async(source)
        .await
        .expect("MIGRATE .. KEYS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_slot_migration_deletes_every_key_on_both_nodes() {
    let cluster = RedisCluster::start();
    let prefix = support::unique_prefix("migration");
    let cache = Cache::builder(&cluster.url())
        .prefix(prefix.clone())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the cluster answers");
    let counter = AtomicUsize::new(0);
    let keys: Vec<String> = (0..6)
        .map(|id| format!("{prefix}{{tenant:7}}:user:{id}"))
        .collect();
    let store_all = || async {
        for id in 0..6 {
            user(&cache, &counter, id).await;
        }
    };
    store_all().await;

    let slot = cluster.slot("tenant:7");
    let from = cluster.primary_for_slot(slot);
    let to = *cluster
        .primaries()
        .iter()
        .find(|&&primary| primary != from)
        .expect("three primaries");
    let (mut source, mut target) = (cluster.connection(from).await, cluster.connection(to).await);
    let (from_id, to_id) = (node_id(&mut source).await, node_id(&mut target).await);
    // Lookups run as scripts before Redis 7.0 (`SET .. GET` is 7.0's).
    let scripted = harness::lookup_command(&mut source).await == "evalsha";
    let slot_arg = slot.to_string();
    assert_eq!(
        held(&mut source, &keys).await,
        keys,
        "all stored on the source"
    );

    // The migration, halfway: users 0 to 2 on the target, 3 to 5 on the source.
    cluster_cmd(&mut target, &["SETSLOT", &slot_arg, "IMPORTING", &from_id]).await;
    cluster_cmd(&mut source, &["SETSLOT", &slot_arg, "MIGRATING", &to_id]).await;
    migrate(&mut source, cluster.node(to).port(), &keys[..3]).await;
    assert_eq!(held(&mut target, &keys).await, keys[..3]);

    // Lookups are answered by whichever node holds the key.
    let runs_before = runs(&counter);
    for id in 0..6 {
        assert_eq!(
            user(&cache, &counter, id).await,
            Some(Outcome::Hit),
            "user {id}"
        );
    }
    assert_eq!(runs(&counter), runs_before);

    // One invalidation of the six keys: none is left on either node.
    let started = Instant::now();
    rename_tenant(&cache, "7").await;
    let elapsed = started.elapsed();
    assert!(elapsed < TIMEOUT, "the invalidation took {elapsed:?}");
    assert_eq!(
        held(&mut source, &keys).await,
        Vec::<String>::new(),
        "left on the source"
    );
    assert_eq!(
        held(&mut target, &keys).await,
        Vec::<String>::new(),
        "left on the target"
    );
    // `Cache::invalidate` says so too: no error reaches the caller. Before Redis 7.0 the
    // lookups above run as scripts, whose redirects count against the breaker: it may be
    // open by now, and the invalidation is then deferred (its keys misses here, deleted
    // once the breaker closes), which the error says.
    store_all().await;
    let rendered: Vec<String> = (0..6).map(|id| format!("{{tenant:7}}:user:{id}")).collect();
    let rendered: Vec<&str> = rendered.iter().map(String::as_str).collect();
    match cache.invalidate(&rendered).await {
        Ok(()) => {}
        Err(redis_cached::Error::Unavailable) if scripted => {
            eprintln!("the breaker was open: the invalidation was deferred");
            support::eventually(Duration::from_secs(10), "the deferred deletion", || {
                let (mut source, mut target, keys) = (source.clone(), target.clone(), &keys);
                async move {
                    held(&mut source, keys).await.is_empty()
                        && held(&mut target, keys).await.is_empty()
                }
            })
            .await;
        }
        Err(error) => panic!("an invalidation during a migration failed: {error}"),
    }
    assert_eq!(held(&mut source, &keys).await, Vec::<String>::new());
    assert_eq!(held(&mut target, &keys).await, Vec::<String>::new());
    for id in 0..6 {
        assert_eq!(
            user(&cache, &counter, id).await,
            Some(Outcome::Miss),
            "user {id}"
        );
    }

    // The migration ends; lookups and invalidations as usual.
    let left = held(&mut source, &keys).await;
    if !left.is_empty() {
        migrate(&mut source, cluster.node(to).port(), &left).await;
    }
    for primary in cluster.primaries() {
        let mut redis = cluster.connection(primary).await;
        cluster_cmd(&mut redis, &["SETSLOT", &slot_arg, "NODE", &to_id]).await;
    }
    assert_eq!(held(&mut target, &keys).await, keys);
    for id in 0..6 {
        assert_eq!(
            user(&cache, &counter, id).await,
            Some(Outcome::Hit),
            "user {id}"
        );
    }
    rename_tenant(&cache, "7").await;
    assert_eq!(held(&mut target, &keys).await, Vec::<String>::new());
}
