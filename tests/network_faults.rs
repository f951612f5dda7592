//! Network faults against real servers (`harness::netfault`: packets held, dropped at
//! random, or all dropped, on the traffic of a server's ports): every call returns within
//! the cache's timeout plus its body, returns the body's value, never reads what an
//! invalidation that returned removed, and hits resume once the network heals. The figures
//! (call latency during the fault, time to recover) are printed: `--nocapture` shows them.
//! Needs root and iptables (CI has both; `scripts/test` installs iptables).

mod harness;
mod support;

use harness::RedisServer;
use harness::netfault::NetFault;
use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, Outcome, with_outcome};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{square, unique_prefix};

/// The caches' timeout on each Redis operation.
const TIMEOUT: Duration = Duration::from_millis(100);

/// What a call may take beyond its Redis operations and its body: scheduling on a loaded
/// two-core machine.
const MARGIN: Duration = Duration::from_millis(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spikes_on_one_server_bound_every_call_and_hits_resume() {
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .prefix(unique_prefix("latency"))
        .timeout(TIMEOUT)
        .build()
        .await
        .expect("the server answers");
    let counter = AtomicUsize::new(0);
    support::assert_miss_then_hit(|| support::checked_square(&cache, &counter, 1)).await;

    let fault = NetFault::on_port(server.port());
    fault.delay(Duration::from_millis(200));
    let mut latencies = Vec::new();
    for id in 0..20 {
        let started = Instant::now();
        let (value, _) = with_outcome(square(&cache, &counter, id % 4)).await;
        latencies.push(started.elapsed());
        assert_eq!(value, Ok((id % 4) * (id % 4)));
    }
    latencies.sort();
    let max = latencies[latencies.len() - 1];
    eprintln!("latency 200 ms: call max {max:?}");
    fault.heal();
    let healed = Instant::now();
    while with_outcome(square(&cache, &counter, 1)).await.1 != Some(Outcome::Hit) {
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "hits never resumed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("hits resumed {:?} after healing", healed.elapsed());
    assert!(max < 3 * TIMEOUT + MARGIN, "a call took {max:?}");
}

/// A `PING` round trip on `connection`, or `None` when no answer came within `limit`.
async fn ping(connection: &mut MultiplexedConnection, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let ping = redis::cmd("PING");
    match tokio::time::timeout(limit, ping.query_async::<String>(connection)).await {
        Ok(Ok(_)) => Some(started.elapsed()),
        _ => None,
    }
}

/// The harness itself: a delay holds each packet, each way (a round trip takes twice the
/// delay more); loss delays some round trips by a retransmission (200 ms and more); a
/// partition drops every packet; none touches another port; healing lifts each; dropping
/// the handle removes its rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_delays_drops_and_cuts_one_port_and_cleans_up() {
    let server = RedisServer::start();
    let other = RedisServer::start();
    let mut connection = server.connection().await;
    let mut untouched = other.connection().await;
    let fault = NetFault::on_port(server.port());
    let chain = fault.chain().to_owned();

    fault.delay(Duration::from_millis(100));
    let delayed = ping(&mut connection, Duration::from_secs(2)).await;
    let elsewhere = ping(&mut untouched, Duration::from_secs(2)).await;
    eprintln!("delay 100 ms: PING {delayed:?}; on another port {elsewhere:?}");
    assert!(
        delayed
            .is_some_and(|rtt| rtt >= Duration::from_millis(195) && rtt < Duration::from_secs(1)),
        "{delayed:?}"
    );
    assert!(
        elsewhere.is_some_and(|rtt| rtt < Duration::from_millis(50)),
        "{elsewhere:?}"
    );

    fault.loss(30);
    // redis-rs gives up on a reply after 500 ms: a late one counts as that long.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let _ = ping(&mut connection, Duration::from_secs(5)).await;
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("loss 30 %: slowest of 10 PINGs {slowest:?}");
    assert!(
        slowest >= Duration::from_millis(200) && slowest < Duration::from_secs(5),
        "{slowest:?}"
    );

    fault.partition();
    assert_eq!(
        ping(&mut connection, Duration::from_millis(500)).await,
        None
    );
    fault.heal();
    // The partitioned PING's retransmission lands within one backed-off RTO.
    let healed = ping(&mut connection, Duration::from_secs(3)).await;
    assert!(healed.is_some(), "no answer after healing");

    drop(fault);
    let rules = std::process::Command::new("iptables")
        .arg("-S")
        .output()
        .expect("iptables runs");
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains(&chain), "left behind:\n{rules}");
}
