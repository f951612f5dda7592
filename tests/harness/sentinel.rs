//! A Sentinel-managed primary: a primary, one replica and three sentinels (quorum 2,
//! `down-after-milliseconds` 1000, `failover-timeout` 3000) on free ports, each sentinel
//! from its own writable configuration file, run as `server_binary() <file> --sentinel`.
//!
//! Every process is a `RedisServer`, killed by its watchdog when the setup drops or the test
//! process dies. Tests kill the primary or ask for a failover and wait for the sentinels to
//! agree on the new one.
#![allow(dead_code)]

use super::{
    Node, RedisServer, TempDir, free_port, info_field, wait_replica_offset, wait_until,
    wait_until_async,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The service name the sentinels monitor.
pub const SERVICE: &str = "mymaster";

/// `down-after-milliseconds`: an unreachable primary is subjectively down after this.
pub const DOWN_AFTER: Duration = Duration::from_millis(1000);

const SETTLE: Duration = Duration::from_secs(15);

pub struct RedisSentinel {
    /// Dropped first, so that no sentinel reacts to its data nodes going away.
    sentinels: Vec<Node>,
    /// Two data nodes: 0 starts as the primary, 1 as its replica.
    data: Vec<Node>,
    /// The index (in `data`) of the primary as of the last switch the harness saw, and when
    /// the switch this test asked for began (a kill or a failover), if one is under way.
    primary: Mutex<(usize, Option<Instant>)>,
    dir: TempDir,
}

/// Parses a sentinel's flat field/value reply (`SENTINEL MASTER`, an entry of `SENTINEL
/// REPLICAS`) into a map.
fn fields(reply: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut reply = reply.into_iter();
    while let (Some(name), Some(value)) = (reply.next(), reply.next()) {
        map.insert(name, value);
    }
    map
}

fn has_flag(entry: &HashMap<String, String>, flag: &str) -> bool {
    entry
        .get("flags")
        .is_some_and(|flags| flags.split(',').any(|f| f == flag))
}

impl RedisSentinel {
    /// Starts the primary, its replica and three sentinels, and waits until every sentinel
    /// sees the primary up, the replica linked and the two other sentinels.
    pub fn start() -> RedisSentinel {
        let dir = TempDir::new("sentinel");
        // Each data node writes its files (a replica's copy of the primary's RDB) apart.
        let data_dir = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(&path).expect("a data directory");
            path.to_str().expect("a UTF-8 path").to_owned()
        };
        let (primary_dir, replica_dir) = (data_dir("primary"), data_dir("replica"));
        let primary =
            RedisServer::start_with(&["--dir", &primary_dir, "--repl-diskless-sync-delay", "0"]);
        let primary_port = primary.port().to_string();
        let replica = RedisServer::start_with(&[
            "--dir",
            &replica_dir,
            "--replicaof",
            "127.0.0.1",
            &primary_port,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let data = vec![Node::new(primary), Node::new(replica)];
        wait_until(SETTLE, "the replica is linked", || {
            let info: String = data[1]
                .query(redis::cmd("INFO").arg("replication"))
                .map_err(|err| err.to_string())?;
            match info_field(&info, "master_link_status") {
                Some("up") => Ok(()),
                other => Err(format!("master_link_status {other:?}")),
            }
        });

        // Each sentinel knows the others and the replica from its file, so that none waits
        // for the hello messages (every 2 s) or the primary's INFO (every 10 s) to find them.
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let ids: Vec<String> = ports
            .iter()
            .map(|&port| format!("{:040x}", u128::from(port) << 16 | 0x5e))
            .collect();
        let sentinels = (0..3)
            .map(|index| {
                let mut config = format!(
                    "sentinel myid {id}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {SERVICE} {down}\n\
                     sentinel failover-timeout {SERVICE} 3000\n\
                     sentinel known-replica {SERVICE} 127.0.0.1 {replica}\n",
                    id = ids[index],
                    primary = data[0].port(),
                    down = DOWN_AFTER.as_millis(),
                    replica = data[1].port(),
                );
                for other in (0..3).filter(|&other| other != index) {
                    config.push_str(&format!(
                        "sentinel known-sentinel {SERVICE} 127.0.0.1 {} {}\n",
                        ports[other], ids[other]
                    ));
                }
                let path = dir.path().join(format!("sentinel-{}.conf", ports[index]));
                std::fs::write(&path, config).expect("a writable sentinel configuration");
                let path = path.to_str().expect("a UTF-8 path");
                Node::new(RedisServer::start_on(
                    ports[index],
                    Some(path),
                    &["--sentinel"],
                ))
            })
            .collect();
        let setup = RedisSentinel {
            sentinels,
            data,
            primary: Mutex::new((0, None)),
            dir,
        };
        wait_until(SETTLE, "the sentinels see everything", || setup.healthy());
        setup
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster`
    pub fn url(&self) -> String {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", sentinels.join(","))
    }

    pub fn sentinels(&self) -> &[Node] {
        &self.sentinels
    }

    fn primary_index(&self) -> usize {
        self.primary.lock().unwrap().0
    }

    /// The primary, as of the last switch the harness saw.
    pub fn primary(&self) -> &Node {
        &self.data[self.primary_index()]
    }

    /// The other data node: the replica (or, after the primary was killed and before the
    /// switch, the node that is to be promoted).
    pub fn replica(&self) -> &Node {
        &self.data[1 - self.primary_index()]
    }

    /// Whether every running sentinel sees the primary up (neither subjectively nor
    /// objectively down), every running data node other than the primary as its replica,
    /// and the other running sentinels, and whether each such replica's link to the primary
    /// is up (asked of the replica: a sentinel refreshes what it knows of replicas only
    /// every 10 s); `Err` says what is not yet so.
    pub fn healthy(&self) -> Result<(), String> {
        let primary = self.primary();
        let replicas: Vec<&Node> = self
            .data
            .iter()
            .filter(|node| node.port() != primary.port() && node.is_running())
            .collect();
        let others = self.sentinels.iter().filter(|s| s.is_running()).count() - 1;
        for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
            let port = sentinel.port();
            let master = fields(
                sentinel
                    .query(redis::cmd("SENTINEL").arg("MASTER").arg(SERVICE))
                    .map_err(|err| format!("SENTINEL MASTER on {port}: {err}"))?,
            );
            if master.get("port").map(String::as_str) != Some(&primary.port().to_string()) {
                return Err(format!(
                    "sentinel {port} sees {:?} as primary",
                    master.get("port")
                ));
            }
            if has_flag(&master, "s_down") || has_flag(&master, "o_down") {
                return Err(format!("sentinel {port} sees the primary down"));
            }
            let seen: Vec<HashMap<String, String>> = sentinel
                .query::<Vec<Vec<String>>>(redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE))
                .map_err(|err| format!("SENTINEL REPLICAS on {port}: {err}"))?
                .into_iter()
                .map(fields)
                .collect();
            for replica in &replicas {
                let linked = seen.iter().any(|entry| {
                    entry.get("port").map(String::as_str) == Some(&replica.port().to_string())
                        && !has_flag(entry, "s_down")
                        && !has_flag(entry, "disconnected")
                });
                if !linked {
                    return Err(format!(
                        "sentinel {port} does not see replica {}: {seen:?}",
                        replica.port()
                    ));
                }
            }
            let peers = sentinel
                .query::<Vec<Vec<String>>>(redis::cmd("SENTINEL").arg("SENTINELS").arg(SERVICE))
                .map_err(|err| format!("SENTINEL SENTINELS on {port}: {err}"))?
                .into_iter()
                .map(fields)
                .filter(|peer| !has_flag(peer, "s_down") && !has_flag(peer, "disconnected"))
                .count();
            if peers < others {
                return Err(format!("sentinel {port} sees {peers} other sentinels"));
            }
        }
        for replica in replicas {
            let info: String = replica
                .query(redis::cmd("INFO").arg("replication"))
                .map_err(|err| err.to_string())?;
            if info_field(&info, "master_link_status") != Some("up") {
                return Err(format!("replica {}'s link is down", replica.port()));
            }
        }
        Ok(())
    }

    /// Closes the primary's replication link (`CLIENT KILL TYPE replica`), so that its next
    /// writes reach the replica only once it reconnects (a SIGSTOPped replica does not; see
    /// `RedisCluster::disconnect_replicas` for why stopping it is not enough).
    pub fn disconnect_replica(&self) {
        let killed: u64 = self
            .primary()
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"))
            .expect("CLIENT KILL TYPE replica");
        assert!(killed > 0, "the primary had no replica connected");
    }

    /// SIGKILLs the primary; [`wait_new_primary`](Self::wait_new_primary) then waits for the
    /// sentinels to promote the replica.
    pub fn kill_primary(&self) {
        self.primary.lock().unwrap().1 = Some(Instant::now());
        self.primary().kill();
    }

    /// `SENTINEL FAILOVER mymaster`, asked of a running sentinel until one accepts it (a
    /// replica just continued may not be eligible at once); `INPROG` (a failover the
    /// sentinels started themselves) counts as accepted.
    pub async fn failover(&self) {
        self.primary
            .lock()
            .unwrap()
            .1
            .get_or_insert_with(Instant::now);
        wait_until_async(SETTLE, "a sentinel starts a failover", || {
            let sentinel = self
                .sentinels
                .iter()
                .find(|s| s.is_running())
                .ok_or("no sentinel runs")?;
            match sentinel.query::<()>(redis::cmd("SENTINEL").arg("FAILOVER").arg(SERVICE)) {
                Ok(()) => Ok(()),
                Err(err) if err.code() == Some("INPROG") => Ok(()),
                Err(err) => Err(err.to_string()),
            }
        })
        .await;
    }

    /// Waits until every running sentinel names the other data node as the primary, and
    /// that node says it is one; returns how long since the kill or failover began.
    pub async fn wait_new_primary(&self, limit: Duration) -> Duration {
        let (old, since) = *self.primary.lock().unwrap();
        let new = &self.data[1 - old];
        wait_until_async(limit, "the sentinels switch to the replica", || {
            for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
                let (_, port): (String, u16) = sentinel
                    .query(
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(SERVICE),
                    )
                    .map_err(|err| err.to_string())?;
                if port != new.port() {
                    return Err(format!("sentinel {} names {port}", sentinel.port()));
                }
            }
            let info: String = new
                .query(redis::cmd("INFO").arg("replication"))
                .map_err(|err| err.to_string())?;
            match info_field(&info, "role") {
                Some("master") => Ok(()),
                role => Err(format!("the new primary's role is {role:?}")),
            }
        })
        .await;
        *self.primary.lock().unwrap() = (1 - old, None);
        since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Waits until the setup is healthy again (a demoted primary back as a replica).
    pub async fn wait_healthy(&self, limit: Duration) -> Duration {
        wait_until_async(limit, "the sentinels see everything", || self.healthy()).await
    }

    /// Waits until the replica (if running) has every write the primary took so far.
    pub async fn wait_replicated(&self, limit: Duration) -> Duration {
        wait_replica_offset(self.primary(), &[self.replica()], limit).await
    }
}
