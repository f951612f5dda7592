//! Redis Cluster: the connection's settings, hash slots, and the topology task.
//!
//! redis-rs's async cluster connection routes each command by its key's slot, follows
//! `MOVED`/`ASK` and reconnects. What it does not give is kept here: every command bounded
//! by the cache's timeout (its default has no bound) with short retries, the slot of a key
//! (to send one `UNLINK` per slot, since a multi-slot `UNLINK` may silently skip a slot
//! whose node is connecting), and the topology: a task reads `CLUSTER SLOTS` every second
//! to give each primary its own breaker and to tell the near tier which nodes to track.

use super::breaker::{Breakers, SLOTS};
use super::connection::Certificates;
use crate::Error;
use crate::task::spawn_detached;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Client, Value};
use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::watch;

/// How often the topology is read.
const TOPOLOGY_EVERY: Duration = Duration::from_secs(1);

/// The hash slot of `key`: CRC16 of its hash tag (the text between the first `{` and the
/// next `}`, if not empty) or of the whole key, modulo 16384.
pub(crate) fn slot(key: &str) -> u16 {
    slot_of(key.as_bytes())
}

/// [`slot`] of a key as Redis returns it (`SCAN`), which need not be UTF-8.
pub(crate) fn slot_of(bytes: &[u8]) -> u16 {
    let hashed = bytes
        .iter()
        .position(|&byte| byte == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|&byte| byte == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    let crc = crc16::State::<crc16::XMODEM>::calculate(hashed);
    crc % SLOTS as u16
}

/// The cluster client for `nodes` (single-node URLs): each request, redirects and retries
/// included, bounded by `timeout`; two quick retries, no replica reads.
pub(crate) fn client(
    nodes: Vec<redis::ConnectionInfo>,
    timeout: Duration,
    certificates: Option<Certificates>,
) -> redis::RedisResult<ClusterClient> {
    let builder = ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout))
        .retries(2)
        .min_retry_wait(10)
        .max_retry_wait(100);
    #[cfg(feature = "tls")]
    let builder = match certificates {
        Some(certificates) => builder.certs(certificates),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = certificates;
    builder.build()
}

/// Connects (in the background when `lazy`; the first command then reports the failure).
pub(crate) async fn connect(
    client: &ClusterClient,
    address: &str,
    timeout: Duration,
    lazy: bool,
) -> Result<ClusterConnection, Error> {
    let config = ClusterConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    if lazy {
        return Ok(client.get_pending_async_connection_with_config(config));
    }
    let connect_error = |reason: String| Error::Connect {
        address: address.to_owned(),
        reason,
    };
    // The initial connection can hang (redis-rs#1953): bound it.
    tokio::time::timeout(
        timeout.max(Duration::from_secs(1)),
        client.get_async_connection_with_config(config),
    )
    .await
    .map_err(|_| connect_error(format!("no answer within {timeout:?}")))?
    .map_err(|error| connect_error(error.to_string()))
}

/// What the topology task keeps current.
pub(crate) struct Topology {
    pub(crate) breakers: Weak<Breakers>,
    /// Every node (primaries and replicas), for the near tier's tracking connections.
    pub(crate) nodes: watch::Sender<Vec<Client>>,
    /// A node's client from its `host:port`, with the cache's credentials and TLS.
    pub(crate) node_client: NodeClient,
}

/// Makes a node's client from its `host:port`.
pub(crate) type NodeClient = Box<dyn Fn(&str) -> Option<Client> + Send + Sync>;

/// Reads the topology every second while the breakers live: slot ranges to primaries for
/// the breakers, and the nodes for the near tier, published whenever the topology changes
/// (a node added or removed, a failover, a slot moved), so that the tier starts over.
pub(crate) fn watch_topology(connection: ClusterConnection, topology: Topology, timeout: Duration) {
    spawn_detached(async move {
        let mut connection = connection;
        let mut known = (Vec::new(), BTreeSet::new());
        loop {
            let Some(breakers) = topology.breakers.upgrade() else {
                return;
            };
            let read = tokio::time::timeout(
                timeout,
                connection.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                ),
            )
            .await;
            if let Ok(Ok(slots)) = read {
                let (mut ranges, nodes) = parse_slots(&slots);
                ranges.sort();
                if !ranges.is_empty() {
                    breakers.update(&ranges);
                }
                let read = (ranges, nodes);
                if !known.0.is_empty() && read.0 != known.0 {
                    refresh_routing(&mut connection, &read.0, timeout).await;
                }
                if !read.1.is_empty() && read != known {
                    let clients = read
                        .1
                        .iter()
                        .filter_map(|node| (topology.node_client)(node))
                        .collect();
                    topology.nodes.send_replace(clients);
                    known = read;
                }
            }
            drop(breakers);
            tokio::time::sleep(TOPOLOGY_EVERY).await;
        }
    });
}

/// Makes redis-rs read the map of slots again after the slots moved (a failover). It does so
/// on a `MOVED` reply, not on timeouts: requests for the slots of a primary that hangs (its
/// connections open, nothing answering) would go on timing out after its replica was
/// promoted. So one `EXISTS` of a key of another primary's slot is sent to a primary of the
/// new map, whose `MOVED` reply makes redis-rs read the map again.
async fn refresh_routing(
    connection: &mut ClusterConnection,
    ranges: &[(u16, u16, String)],
    timeout: Duration,
) {
    let Some((_, _, asked)) = ranges.first() else {
        return;
    };
    let owner = |slot: u16| {
        ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, owner)| owner)
    };
    let Some(key) = (0_u32..1000)
        .map(|n| n.to_string())
        .find(|key| owner(slot(key)).is_some_and(|owner| owner != asked))
    else {
        return;
    };
    let Some((host, port)) = asked.rsplit_once(':') else {
        return;
    };
    let (Ok(port), host) = (port.parse(), host.trim_matches(['[', ']'])) else {
        return;
    };
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port,
    });
    let exists = connection.route_command(redis::cmd("EXISTS").arg(key).clone(), routing);
    let _ = tokio::time::timeout(timeout, exists).await;
}

/// From a `CLUSTER SLOTS` reply: `(first, last, primary)` ranges and every node's address.
fn parse_slots(reply: &Value) -> (Vec<(u16, u16, String)>, BTreeSet<String>) {
    let mut ranges = Vec::new();
    let mut nodes = BTreeSet::new();
    let Value::Array(entries) = reply else {
        return (ranges, nodes);
    };
    for entry in entries {
        let Value::Array(fields) = entry else {
            continue;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last))) = (fields.first(), fields.get(1))
        else {
            continue;
        };
        let addresses: Vec<String> = fields[2..].iter().filter_map(node_address).collect();
        if let (Some(primary), Ok(first), Ok(last)) = (
            addresses.first(),
            u16::try_from(*first),
            u16::try_from(*last),
        ) {
            ranges.push((first, last, primary.clone()));
        }
        nodes.extend(addresses);
    }
    (ranges, nodes)
}

/// The primaries a `CLUSTER SLOTS` reply names, as `(host, port)` without brackets: what
/// redis-rs's routing by address expects.
pub(crate) fn primaries(reply: &Value) -> BTreeSet<(String, u16)> {
    let Value::Array(entries) = reply else {
        return BTreeSet::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Array(fields) => fields.get(2).and_then(host_port),
            _ => None,
        })
        .collect()
}

fn host_port(node: &Value) -> Option<(String, u16)> {
    let Value::Array(fields) = node else {
        return None;
    };
    let host = match fields.first()? {
        Value::BulkString(host) => String::from_utf8(host.clone()).ok()?,
        Value::SimpleString(host) => host.clone(),
        _ => return None,
    };
    let Value::Int(port) = fields.get(1)? else {
        return None;
    };
    Some((host, u16::try_from(*port).ok()?))
}

/// `host:port` from a node entry `[host, port, id, ...]`.
fn node_address(node: &Value) -> Option<String> {
    let (host, port) = host_port(node)?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_follow_the_cluster_specification() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }
}
