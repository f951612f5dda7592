//! The harness's topologies, checked through plain redis-rs clients (no cache): a cluster of
//! three primaries and three replicas, and a Sentinel-managed primary with one replica,
//! both healthy when `start` returns, both failing over when the harness kills a primary.
//! Start-up and failover times are printed (`--nocapture`). The failovers are the servers'
//! own, which every failover test of the cache exercises on each server version too: these
//! run on `scripts/test`'s first pass only.

mod harness;

use harness::cluster::{RedisCluster, SLOTS};
use harness::sentinel::{RedisSentinel, SERVICE};
use redis::AsyncCommands;
use std::time::{Duration, Instant};

/// The cluster's and the setup's own failover: a few seconds with 1 s timeouts; generous.
const FAILOVER_BOUND: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_starts_healthy_serves_every_slot_and_fails_over() {
    if harness::rerun_skips("a_cluster_starts_healthy_serves_every_slot_and_fails_over") {
        return;
    }
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster: started in {:?}", started.elapsed());

    // Three primaries serving a third of the slots each, three replicas of one each.
    let views = cluster.views();
    let primaries: Vec<_> = views.iter().filter(|view| view.is_primary()).collect();
    assert_eq!(primaries.len(), 3, "{views:?}");
    assert!(primaries.iter().all(|primary| !primary.slots.is_empty()));
    assert_eq!(views.iter().filter(|view| view.is_replica()).count(), 3);
    assert_eq!(cluster.primaries(), vec![0, 1, 2]);
    let owners = cluster.slot_owners();
    assert_eq!(owners.len(), usize::from(SLOTS));
    for primary in 0..3 {
        assert_eq!(cluster.replica_of(primary), primary + 3);
    }

    // redis-rs's cluster client, from the seeds of `url()`, reaches every primary.
    let seeds: Vec<String> = cluster
        .url()
        .trim_start_matches("redis+cluster://")
        .split(',')
        .map(|seed| format!("redis://{seed}"))
        .collect();
    assert_eq!(seeds.len(), 3);
    let client = redis::cluster::ClusterClient::new(seeds).expect("seeds");
    let mut connection = client
        .get_async_connection()
        .await
        .expect("the cluster answers");
    let ids = harness::cluster::ids_per_primary(&cluster, 4, |id| format!("topology:{id}"));
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    for (&primary, ids) in &ids {
        for id in ids {
            let key = format!("topology:{id}");
            let () = connection.set(&key, *id).await.expect("SET");
            assert_eq!(cluster.primary_for(&key), primary);
            assert!(cluster.exists(&key).await, "{key} is on node {primary}");
        }
        cluster
            .wait_replicated(primary, Duration::from_secs(5))
            .await;
        // The replica has the keys too (READONLY: a replica answers for its primary's slots).
        let mut replica = cluster.connection(cluster.replica_of(primary)).await;
        let () = redis::cmd("READONLY")
            .query_async(&mut replica)
            .await
            .expect("READONLY");
        for id in ids {
            let value: Option<u64> = replica.get(format!("topology:{id}")).await.expect("GET");
            assert_eq!(value, Some(*id));
        }
    }

    // SIGKILL a primary: its replica takes over, and the client finds the keys there.
    let (&victim, victim_ids) = ids.iter().next().unwrap();
    let replica = cluster.replica_of(victim);
    let killed = Instant::now();
    cluster.kill(victim);
    let promoted = cluster.wait_promoted(replica, FAILOVER_BOUND).await;
    eprintln!(
        "cluster: node {replica} promoted {:?} after node {victim} was killed",
        killed.elapsed()
    );
    assert!(promoted <= killed.elapsed());
    for id in victim_ids {
        let key = format!("topology:{id}");
        assert_eq!(cluster.primary_for(&key), replica);
        let value: Option<u64> = connection.get(&key).await.expect("GET after failover");
        assert_eq!(value, Some(*id), "the promoted replica serves {key}");
    }

    // A coordinated failover of another shard, and a takeover of the third.
    let (second, third) = (cluster.replica_of(1), cluster.replica_of(2));
    cluster.failover(second);
    cluster.wait_promoted(second, FAILOVER_BOUND).await;
    cluster.failover_takeover(third);
    cluster.wait_promoted(third, FAILOVER_BOUND).await;
    assert_eq!(cluster.primaries(), vec![3, 4, 5]);
    eprintln!("cluster: whole test {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_setup_starts_healthy_and_promotes_the_replica() {
    if harness::rerun_skips("a_sentinel_setup_starts_healthy_and_promotes_the_replica") {
        return;
    }
    let started = Instant::now();
    let setup = RedisSentinel::start();
    eprintln!("sentinel: started in {:?}", started.elapsed());
    assert!(setup.url().starts_with("redis+sentinel://127.0.0.1:"));
    assert!(setup.url().ends_with("/mymaster"));
    assert_eq!(setup.sentinels().len(), 3);

    // redis-rs's sentinel client resolves the primary.
    let sentinels: Vec<String> = setup
        .sentinels()
        .iter()
        .map(|sentinel| sentinel.url())
        .collect();
    // A `String`: redis-rs takes one without TLS, `impl AsRef<str>` with (`--all-features`).
    #[allow(clippy::unnecessary_to_owned)]
    let connect = || async {
        let mut client = redis::sentinel::SentinelClient::build(
            sentinels.clone(),
            SERVICE.to_owned(),
            None,
            redis::sentinel::SentinelServerType::Master,
        )
        .expect("sentinel addresses");
        client
            .get_async_connection()
            .await
            .expect("the sentinels name a primary")
    };
    let mut connection = connect().await;
    let () = connection.set("topology:key", 1).await.expect("SET");
    let port: u16 = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query_async::<(String, u16)>(&mut connection)
        .await
        .expect("CONFIG GET port")
        .1;
    assert_eq!(port, setup.primary().port());
    setup.wait_replicated(Duration::from_secs(5)).await;
    let value: Option<u64> = setup
        .replica()
        .connection()
        .await
        .get("topology:key")
        .await
        .expect("GET on the replica");
    assert_eq!(value, Some(1));

    // SIGKILL the primary: the sentinels promote the replica.
    let (old, new) = (setup.primary().port(), setup.replica().port());
    setup.kill_primary();
    let switched = setup.wait_new_primary(FAILOVER_BOUND).await;
    eprintln!("sentinel: replica promoted {switched:?} after the primary was killed");
    assert_eq!(setup.primary().port(), new);
    assert_ne!(setup.primary().port(), old);
    let mut connection = connect().await;
    let value: Option<u64> = connection.get("topology:key").await.expect("GET");
    assert_eq!(value, Some(1));
    let () = connection
        .set("topology:key", 2)
        .await
        .expect("SET on the new primary");
    eprintln!("sentinel: whole test {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_swaps_primary_and_replica() {
    if harness::rerun_skips("a_sentinel_failover_swaps_primary_and_replica") {
        return;
    }
    let setup = RedisSentinel::start();
    let (old, new) = (setup.primary().port(), setup.replica().port());
    setup.failover().await;
    let switched = setup.wait_new_primary(FAILOVER_BOUND).await;
    eprintln!("sentinel: SENTINEL FAILOVER took {switched:?}");
    assert_eq!(setup.primary().port(), new);
    // The old primary comes back as the new one's replica.
    let settled = setup.wait_healthy(FAILOVER_BOUND).await;
    eprintln!("sentinel: the old primary replicates the new one {settled:?} later");
    assert_eq!(setup.replica().port(), old);
}
