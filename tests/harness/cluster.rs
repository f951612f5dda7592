//! A Redis Cluster of six nodes (three primaries, three replicas) on free ports, formed by
//! cluster commands sent from here rather than by `redis-cli --cluster create`, so that it
//! works with any server binary `server_binary()` names (Redis 6.2, 7.x, Valkey 8).
//!
//! Nodes are `RedisServer`s: each is killed by its watchdog when the cluster drops or the
//! test process dies. Tests find the nodes that serve a key, kill (SIGKILL), stop (SIGSTOP)
//! and continue them, fail over, and wait for the topology to settle, polling every 50 ms.
#![allow(dead_code)]

use super::{
    Node, RedisServer, TempDir, info_field, wait_replica_offset, wait_until, wait_until_async,
};
use redis::aio::MultiplexedConnection;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `cluster-node-timeout`: a node unreachable this long is suspected, and a primary's
/// replica starts an election soon after (about 2–3 s from a SIGKILL to a promotion).
pub const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Slots in a cluster.
pub const SLOTS: u16 = 16384;

const PRIMARIES: usize = 3;
const NODES: usize = 6;

/// How long the harness waits for a topology to form or settle.
const SETTLE: Duration = Duration::from_secs(15);

/// Six nodes: 0–2 start as primaries (slots split in three), 3–5 as their replicas (3
/// replicates 0, 4 replicates 1, 5 replicates 2). Roles change with failovers: ask
/// [`primary_for`](Self::primary_for) rather than assuming them.
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// Dropped after the nodes: their node tables live here.
    dir: TempDir,
}

/// One line of `CLUSTER NODES`, as one node sees another.
#[derive(Clone, Debug)]
pub struct NodeView {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The primary's id, for a replica.
    pub primary_id: Option<String>,
    /// Inclusive slot ranges it serves.
    pub slots: Vec<(u16, u16)>,
}

impl NodeView {
    pub fn is_primary(&self) -> bool {
        self.flags.iter().any(|flag| flag == "master")
    }

    pub fn is_replica(&self) -> bool {
        self.flags.iter().any(|flag| flag == "slave")
    }

    /// Suspected (`fail?`) or failed (`fail`) by the node that reported it.
    pub fn is_failing(&self) -> bool {
        self.flags
            .iter()
            .any(|flag| flag == "fail" || flag == "fail?")
    }

    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| first <= slot && slot <= last)
    }
}

/// Parses `CLUSTER NODES`.
pub fn parse_cluster_nodes(text: &str) -> Vec<NodeView> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // 127.0.0.1:7000@17000 (and `,hostname` on 7.0 and later)
            let address = fields[1];
            let port = address
                .split('@')
                .next()
                .and_then(|host_port| host_port.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or(0);
            let slots = fields[8..]
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .map(|slot| match slot.split_once('-') {
                    Some((first, last)) => (first.parse().unwrap(), last.parse().unwrap()),
                    None => (slot.parse().unwrap(), slot.parse().unwrap()),
                })
                .collect();
            NodeView {
                id: fields[0].to_owned(),
                port,
                flags: fields[2].split(',').map(str::to_owned).collect(),
                primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                slots,
            }
        })
        .collect()
}

/// The slot map as one node sees it, in a form two nodes' views can be compared by:
/// for each primary serving slots (by port), its slot ranges and its healthy replicas.
type SlotMap = BTreeMap<u16, (Vec<(u16, u16)>, Vec<u16>)>;

fn slot_map(views: &[NodeView]) -> SlotMap {
    let mut map = SlotMap::new();
    for primary in views
        .iter()
        .filter(|view| view.is_primary() && !view.slots.is_empty())
    {
        let mut slots = primary.slots.clone();
        slots.sort();
        let mut replicas: Vec<u16> = views
            .iter()
            .filter(|view| {
                view.is_replica()
                    && !view.is_failing()
                    && view.primary_id.as_deref() == Some(&primary.id)
            })
            .map(|view| view.port)
            .collect();
        replicas.sort();
        map.insert(primary.port, (slots, replicas));
    }
    map
}

impl RedisCluster {
    /// Starts six nodes, forms the cluster and waits until it is healthy: every node says
    /// `cluster_state:ok`, every node sees the same slot map with one replica per primary,
    /// and every replica's link to its primary is up.
    pub fn start() -> RedisCluster {
        let dir = TempDir::new("cluster");
        let debug = super::binary_version() >= (7, 0);
        let nodes: Vec<Node> = (0..NODES)
            .map(|_| {
                let port = super::free_port();
                let node_dir = dir.path().join(port.to_string());
                std::fs::create_dir_all(&node_dir).expect("a node directory");
                let node_dir = node_dir.to_str().expect("a UTF-8 path").to_owned();
                let timeout = NODE_TIMEOUT.as_millis().to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                    "--dir",
                    &node_dir,
                    // Replicas sync at once instead of after 5 s (7.0's default delay).
                    "--repl-diskless-sync-delay",
                    "0",
                ];
                if debug {
                    args.extend(["--enable-debug-command", "yes"]);
                }
                Node::new(RedisServer::start_on(port, None, &args))
            })
            .collect();
        let cluster = RedisCluster { nodes, dir };
        cluster.form();
        cluster
    }

    fn form(&self) {
        let ids: Vec<String> = self
            .nodes
            .iter()
            .map(|node| {
                node.query(redis::cmd("CLUSTER").arg("MYID"))
                    .expect("CLUSTER MYID")
            })
            .collect();
        // Distinct epochs from the start, as `redis-cli --cluster create` sets them: no
        // collisions for the nodes to resolve.
        for (epoch, node) in self.nodes.iter().enumerate() {
            let _: redis::RedisResult<()> =
                node.query(redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(epoch + 1));
        }
        // Slots in batches (ADDSLOTSRANGE is 7.0 and later).
        let per_primary = SLOTS as usize / PRIMARIES;
        for (index, node) in self.nodes[..PRIMARIES].iter().enumerate() {
            let first = index * per_primary;
            let end = if index == PRIMARIES - 1 {
                SLOTS as usize
            } else {
                first + per_primary
            };
            let slots: Vec<usize> = (first..end).collect();
            for batch in slots.chunks(1000) {
                let () = node
                    .query(redis::cmd("CLUSTER").arg("ADDSLOTS").arg(batch))
                    .expect("CLUSTER ADDSLOTS");
            }
        }
        for node in &self.nodes[1..] {
            let () = self.nodes[0]
                .query(
                    redis::cmd("CLUSTER")
                        .arg("MEET")
                        .arg("127.0.0.1")
                        .arg(node.port()),
                )
                .expect("CLUSTER MEET");
        }
        wait_until(SETTLE, "every node knows every other", || {
            for node in &self.nodes {
                let views = self.views_of(node)?;
                let known = views
                    .iter()
                    .filter(|view| !view.flags.iter().any(|f| f == "handshake" || f == "noaddr"))
                    .count();
                if known != NODES {
                    return Err(format!("node {} knows {known} nodes", node.port()));
                }
            }
            Ok(())
        });
        let mut replicated = [false; PRIMARIES];
        wait_until(SETTLE, "every replica replicates its primary", || {
            for (index, done) in replicated.iter_mut().enumerate() {
                if !*done {
                    let replica = &self.nodes[PRIMARIES + index];
                    replica
                        .query::<()>(redis::cmd("CLUSTER").arg("REPLICATE").arg(&ids[index]))
                        .map_err(|err| format!("CLUSTER REPLICATE: {err}"))?;
                    *done = true;
                }
            }
            Ok(())
        });
        wait_until(SETTLE, "the cluster is healthy", || self.healthy());
        for (index, node) in self.nodes[..PRIMARIES].iter().enumerate() {
            let views = self.views_of(node).expect("CLUSTER NODES");
            let me = views.iter().find(|view| view.port == node.port()).unwrap();
            assert!(
                me.is_primary() && !me.slots.is_empty(),
                "node {index}: {me:?}"
            );
        }
    }

    /// `redis+cluster://127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2`: three seed nodes, so
    /// that a client finds the cluster whichever one is down.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[..3]
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index]
    }

    /// The index of the node listening on `port`.
    pub fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|node| node.port() == port)
            .unwrap_or_else(|| panic!("no node listens on {port}"))
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|node| node.is_running())
    }

    fn any_running(&self) -> &Node {
        self.running().next().expect("a running node")
    }

    fn views_of(&self, node: &Node) -> Result<Vec<NodeView>, String> {
        let text: String = node
            .query(redis::cmd("CLUSTER").arg("NODES"))
            .map_err(|err| format!("CLUSTER NODES on {}: {err}", node.port()))?;
        Ok(parse_cluster_nodes(&text))
    }

    /// The topology as a running node sees it.
    pub fn views(&self) -> Vec<NodeView> {
        self.views_of(self.any_running()).expect("CLUSTER NODES")
    }

    /// `CLUSTER KEYSLOT key`, from a running node.
    pub fn slot(&self, key: &str) -> u16 {
        self.any_running()
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT")
    }

    /// `CLUSTER KEYSLOT` of each key, in one round trip.
    pub fn slots(&self, keys: &[String]) -> Vec<u16> {
        let mut pipeline = redis::pipe();
        for key in keys {
            pipeline.cmd("CLUSTER").arg("KEYSLOT").arg(key);
        }
        let client = redis::Client::open(self.any_running().url()).expect("a valid URL");
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .expect("a running node answers");
        pipeline.query(&mut connection).expect("CLUSTER KEYSLOT")
    }

    /// For each slot, the index of the primary serving it, as a running node sees it.
    pub fn slot_owners(&self) -> Vec<usize> {
        let mut owners = vec![usize::MAX; usize::from(SLOTS)];
        for view in self.views().iter().filter(|view| view.is_primary()) {
            let index = self.index_of_port(view.port);
            for &(first, last) in &view.slots {
                owners[usize::from(first)..=usize::from(last)].fill(index);
            }
        }
        assert!(!owners.contains(&usize::MAX), "every slot is served");
        owners
    }

    /// The index of the primary serving `slot`, as a running node sees it.
    pub fn primary_for_slot(&self, slot: u16) -> usize {
        let views = self.views();
        let primary = views
            .iter()
            .find(|view| view.is_primary() && view.serves(slot))
            .unwrap_or_else(|| panic!("no primary serves slot {slot}: {views:?}"));
        self.index_of_port(primary.port)
    }

    /// The index of the primary serving `key` (the full key, prefix included).
    pub fn primary_for(&self, key: &str) -> usize {
        self.primary_for_slot(self.slot(key))
    }

    /// The index of a replica of the primary serving `key`.
    pub fn replica_for(&self, key: &str) -> usize {
        let primary = self.primary_for(key);
        self.replica_of(primary)
    }

    /// The index of a replica of the primary `primary` (one not failing, if there is one).
    pub fn replica_of(&self, primary: usize) -> usize {
        let views = self.views();
        let primary_id = &views
            .iter()
            .find(|view| view.port == self.nodes[primary].port())
            .expect("the primary is known")
            .id;
        let mut replicas: Vec<&NodeView> = views
            .iter()
            .filter(|view| view.primary_id.as_ref() == Some(primary_id))
            .collect();
        replicas.sort_by_key(|view| view.is_failing());
        let replica = replicas
            .first()
            .unwrap_or_else(|| panic!("node {primary} has no replica: {views:?}"));
        self.index_of_port(replica.port)
    }

    /// The indexes of the nodes serving slots now.
    pub fn primaries(&self) -> Vec<usize> {
        let mut primaries: Vec<usize> = self
            .views()
            .iter()
            .filter(|view| view.is_primary() && !view.slots.is_empty())
            .map(|view| self.index_of_port(view.port))
            .collect();
        primaries.sort();
        primaries
    }

    /// Whether the running nodes agree on a healthy cluster: each says `cluster_state:ok`,
    /// all see the same slot map, every slot is served by a running primary, every running
    /// node is in that map (a primary with slots or a replica) and no other node is, and
    /// every running replica's link to its primary is up. `Err` says what is not yet so.
    pub fn healthy(&self) -> Result<(), String> {
        let mut agreed: Option<SlotMap> = None;
        for node in self.running() {
            let info: String = node
                .query(redis::cmd("CLUSTER").arg("INFO"))
                .map_err(|err| format!("CLUSTER INFO on {}: {err}", node.port()))?;
            if info_field(&info, "cluster_state") != Some("ok") {
                return Err(format!("node {} is not ok", node.port()));
            }
            let map = slot_map(&self.views_of(node)?);
            match &agreed {
                None => agreed = Some(map),
                Some(first) if *first != map => {
                    return Err(format!(
                        "node {} sees {map:?}, another {first:?}",
                        node.port()
                    ));
                }
                Some(_) => {}
            }
        }
        let map = agreed.ok_or("no node runs")?;
        let covered: u32 = map
            .values()
            .flat_map(|(slots, _)| slots)
            .map(|&(first, last)| u32::from(last - first) + 1)
            .sum();
        if covered != u32::from(SLOTS) {
            return Err(format!("{covered} slots served: {map:?}"));
        }
        let mut in_map: Vec<u16> = map
            .iter()
            .flat_map(|(primary, (_, replicas))| std::iter::once(*primary).chain(replicas.clone()))
            .collect();
        in_map.sort();
        let mut running: Vec<u16> = self.running().map(Node::port).collect();
        running.sort();
        if in_map != running {
            return Err(format!("the map has {in_map:?}, running are {running:?}"));
        }
        for node in self.running() {
            let info: String = node
                .query(redis::cmd("INFO").arg("replication"))
                .map_err(|err| format!("INFO on {}: {err}", node.port()))?;
            if info_field(&info, "role") == Some("slave")
                && info_field(&info, "master_link_status") != Some("up")
            {
                return Err(format!("replica {}'s link is down", node.port()));
            }
        }
        Ok(())
    }

    /// Waits until the cluster is healthy again (see [`healthy`](Self::healthy)); returns
    /// how long that took.
    pub async fn wait_healthy(&self, limit: Duration) -> Duration {
        wait_until_async(limit, "the cluster is healthy", || self.healthy()).await
    }

    /// Waits until `node` serves slots in the view of every running node and the cluster is
    /// healthy; returns how long that took.
    pub async fn wait_promoted(&self, node: usize, limit: Duration) -> Duration {
        let port = self.nodes[node].port();
        wait_until_async(limit, &format!("node {node} is a primary"), || {
            for other in self.running() {
                let views = self.views_of(other)?;
                let promoted = views
                    .iter()
                    .any(|view| view.port == port && view.is_primary() && !view.slots.is_empty());
                if !promoted {
                    return Err(format!(
                        "node {} does not see {port} as a primary",
                        other.port()
                    ));
                }
            }
            self.healthy()
        })
        .await
    }

    /// SIGKILLs node `index`.
    pub fn kill(&self, index: usize) {
        self.nodes[index].kill();
    }

    /// SIGSTOPs node `index`.
    pub fn stop(&self, index: usize) {
        self.nodes[index].stop();
    }

    /// SIGCONTs node `index`.
    pub fn cont(&self, index: usize) {
        self.nodes[index].cont();
    }

    /// `CLUSTER FAILOVER` on replica `index`: a coordinated switch with its (running)
    /// primary, losing no write.
    pub fn failover(&self, index: usize) {
        let () = self.nodes[index]
            .query(redis::cmd("CLUSTER").arg("FAILOVER"))
            .expect("CLUSTER FAILOVER");
    }

    /// `CLUSTER FAILOVER TAKEOVER` on replica `index`: it takes its primary's slots without
    /// asking anyone, as after its primary died.
    pub fn failover_takeover(&self, index: usize) {
        let () = self.nodes[index]
            .query(redis::cmd("CLUSTER").arg("FAILOVER").arg("TAKEOVER"))
            .expect("CLUSTER FAILOVER TAKEOVER");
    }

    /// Closes the replication links of primary `index` (`CLIENT KILL TYPE replica`), so that
    /// its next writes reach no replica until one reconnects. A SIGSTOPped replica does not
    /// reconnect, and without this it still gets every write: the kernel keeps accepting
    /// the replication stream into its socket buffer, which it reads once continued.
    pub fn disconnect_replicas(&self, index: usize) {
        let killed: u64 = self.nodes[index]
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"))
            .expect("CLIENT KILL TYPE replica");
        assert!(killed > 0, "node {index} had no replica connected");
    }

    /// `CONFIG SET name value` on every running node.
    pub fn config_set_all(&self, name: &str, value: &str) {
        for node in self.running() {
            let () = node
                .query(redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
                .unwrap_or_else(|err| panic!("CONFIG SET {name} {value}: {err}"));
        }
    }

    /// Keeps the primaries that a test freezes from being failed over, and the other slots
    /// served meanwhile: no replica starts an election, and a node that lost some slots
    /// still serves its own (`cluster-require-full-coverage no`).
    pub fn without_automatic_failover(&self) {
        self.config_set_all("cluster-replica-no-failover", "yes");
        self.config_set_all("cluster-require-full-coverage", "no");
    }

    /// A new connection to node `index` (which answers for the slots it serves).
    pub async fn connection(&self, index: usize) -> MultiplexedConnection {
        self.nodes[index].connection().await
    }

    /// A new connection to the primary serving `key`.
    pub async fn owner_connection(&self, key: &str) -> MultiplexedConnection {
        self.connection(self.primary_for(key)).await
    }

    /// `command_calls_on` node `index`.
    pub async fn command_calls(&self, index: usize) -> HashMap<String, u64> {
        self.nodes[index].command_calls().await
    }

    /// The calls of the commands `names` on every running node, summed.
    pub async fn calls_of(&self, names: &[&str]) -> u64 {
        let mut total = 0;
        for node in self.running() {
            let calls = node.command_calls().await;
            total += names
                .iter()
                .filter_map(|name| calls.get(*name))
                .sum::<u64>();
        }
        total
    }

    /// Whether `key` exists on the primary serving it.
    pub async fn exists(&self, key: &str) -> bool {
        let count: u64 = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut self.owner_connection(key).await)
            .await
            .expect("EXISTS on the key's primary");
        count == 1
    }

    /// Whether each of `keys` exists on the primary serving it (one round trip per primary;
    /// every primary asked must be running).
    pub async fn existing(&self, keys: &[String]) -> Vec<bool> {
        let owners = self.slot_owners();
        let mut by_owner: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (position, slot) in self.slots(keys).into_iter().enumerate() {
            by_owner
                .entry(owners[usize::from(slot)])
                .or_default()
                .push(position);
        }
        let mut found = vec![false; keys.len()];
        for (owner, positions) in by_owner {
            assert!(
                self.nodes[owner].is_running(),
                "node {owner}, which serves some of the keys, is {:?}",
                self.nodes[owner].state()
            );
            let mut pipeline = redis::pipe();
            for &position in &positions {
                pipeline.cmd("EXISTS").arg(&keys[position]);
            }
            let counts: Vec<u64> = pipeline
                .query_async(&mut self.connection(owner).await)
                .await
                .expect("EXISTS on the keys' primary");
            for (position, count) in positions.into_iter().zip(counts) {
                found[position] = count == 1;
            }
        }
        found
    }

    /// Waits until every running replica of `primary` has every write `primary` took so
    /// far (their replication offsets reach its offset).
    pub async fn wait_replicated(&self, primary: usize, limit: Duration) -> Duration {
        let primary_id: String = self.nodes[primary]
            .query(redis::cmd("CLUSTER").arg("MYID"))
            .expect("CLUSTER MYID");
        let views = self.views();
        let replicas: Vec<&Node> = views
            .iter()
            .filter(|view| view.is_replica() && view.primary_id.as_deref() == Some(&primary_id))
            .map(|view| &self.nodes[self.index_of_port(view.port)])
            .collect();
        wait_replica_offset(&self.nodes[primary], &replicas, limit).await
    }
}

/// Ids 0, 1, … until each primary serves `per_primary` of the keys `key_of(id)` renders
/// (full keys, prefix included); the ids grouped by the index of the primary serving them.
pub fn ids_per_primary(
    cluster: &RedisCluster,
    per_primary: usize,
    key_of: impl Fn(u64) -> String,
) -> BTreeMap<usize, Vec<u64>> {
    let owners = cluster.slot_owners();
    let primaries = cluster.primaries();
    let mut ids: BTreeMap<usize, Vec<u64>> = primaries.iter().map(|&p| (p, Vec::new())).collect();
    let mut next = 0;
    while ids.values().any(|bucket| bucket.len() < per_primary) {
        let batch: Vec<u64> = (next..next + 64).collect();
        next += 64;
        let keys: Vec<String> = batch.iter().map(|&id| key_of(id)).collect();
        for (id, slot) in batch.into_iter().zip(cluster.slots(&keys)) {
            let bucket = ids.get_mut(&owners[usize::from(slot)]).expect("a primary");
            if bucket.len() < per_primary {
                bucket.push(id);
            }
        }
    }
    ids
}
