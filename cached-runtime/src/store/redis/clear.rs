//! Clearing on Redis: `SCAN` each primary (the one server, the Sentinel-named primary, or
//! every primary of a Cluster, reached by address: `SCAN` walks one node's keys) for keys
//! matching a pattern, and `UNLINK` the selected ones batch by batch, each batch's `UNLINK`
//! sent with the next `SCAN` step. Never `KEYS`, which blocks the server for the whole walk.

use super::RedisStore;
use crate::Error;
use crate::store::Sweep;
use crate::store::cluster;
use crate::store::connection::Connection;
use futures_util::future::join_all;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, Value};
use std::collections::HashMap;

/// Keys a `SCAN` step looks at: 100,000 keys take about 100 round trips, and each step stays
/// short on the server.
const SCAN_COUNT: usize = 1000;

impl RedisStore {
    /// Deletes the keys `sweep` selects on every primary (a Cluster's at once); the first
    /// error stops the sweep of its node and is returned once the others finish.
    pub(crate) async fn clear(&self, sweep: &Sweep<'_>) -> Result<u64, Error> {
        let Connection::Cluster(connection) = &self.connection else {
            return self.clear_node(None, sweep).await;
        };
        let slots = connection
            .clone()
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let primaries = cluster::primaries(&slots);
        if primaries.is_empty() {
            return Err(Error::Redis(RedisError::from((
                redis::ErrorKind::ClusterConnectionNotFound,
                "CLUSTER SLOTS named no primary",
            ))));
        }
        let sweeps = primaries.into_iter().map(|(host, port)| {
            let node = SingleNodeRoutingInfo::ByAddress { host, port };
            async move { self.clear_node(Some(node), sweep).await }
        });
        let mut deleted = 0;
        let mut failure = None;
        for swept in join_all(sweeps).await {
            match swept {
                Ok(count) => deleted += count,
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        failure.map_or(Ok(deleted), Err)
    }

    /// One node's sweep (`None`: the only primary): `SCAN` to the end, each step's selected
    /// keys unlinked while the next step runs.
    async fn clear_node(
        &self,
        node: Option<SingleNodeRoutingInfo>,
        sweep: &Sweep<'_>,
    ) -> Result<u64, Error> {
        let (mut cursor, mut deleted) = (0_u64, 0);
        let mut selected: Vec<Vec<u8>> = Vec::new();
        loop {
            let (scanned, unlinked) = tokio::join!(
                self.scan(node.as_ref(), cursor, sweep.glob),
                self.unlink(&selected, node.as_ref())
            );
            let unlinked = unlinked?;
            deleted += unlinked;
            (sweep.progress)(unlinked);
            let (next, keys) = scanned?;
            selected = keys.into_iter().filter(|key| (sweep.select)(key)).collect();
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let unlinked = self.unlink(&selected, node.as_ref()).await?;
        (sweep.progress)(unlinked);
        Ok(deleted + unlinked)
    }

    /// One `SCAN` step: the next cursor (0 at the end) and the keys it returned.
    async fn scan(
        &self,
        node: Option<&SingleNodeRoutingInfo>,
        cursor: u64,
        glob: &str,
    ) -> Result<(u64, Vec<Vec<u8>>), Error> {
        let mut scan = Cmd::new();
        scan.arg("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(glob)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        match (node, &self.connection) {
            (Some(node), Connection::Cluster(connection)) => {
                let reply: Value = connection
                    .clone()
                    .route_command(scan, RoutingInfo::SingleNode(node.clone()))
                    .await?;
                Ok(redis::from_redis_value(reply).map_err(RedisError::from)?)
            }
            _ => self.run(&scan).await,
        }
    }

    /// `UNLINK`s `keys` (on a Cluster, one command per hash slot: a multi-slot `UNLINK` is
    /// refused); says how many existed.
    async fn unlink(
        &self,
        keys: &[Vec<u8>],
        node: Option<&SingleNodeRoutingInfo>,
    ) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let Connection::Cluster(connection) = &self.connection else {
            return self.unlink_group(keys).await;
        };
        let mut slots: HashMap<u16, Vec<&[u8]>> = HashMap::new();
        for key in keys {
            slots.entry(cluster::slot_of(key)).or_default().push(key);
        }
        let mut groups: Vec<Vec<&[u8]>> = slots.into_values().collect();
        let mut deleted = 0;
        // The node that returned the keys serves their slots: one pipeline to it is one
        // round trip for the batch (a command routed by slot each is a thousand). A group
        // whose slot moved meanwhile is answered with a redirect, and goes the routed way.
        if let (Some(node), None) = (node, &self.replicated) {
            let mut pipe = redis::pipe();
            for group in &groups {
                pipe.cmd("UNLINK").arg(group);
            }
            let replies = connection
                .clone()
                .route_pipeline(pipe, 0, groups.len(), node.clone())
                .await;
            if let Ok(replies) = replies
                && replies.len() == groups.len()
            {
                let mut left = Vec::new();
                for (group, reply) in groups.into_iter().zip(replies) {
                    match reply {
                        Value::Int(count) => deleted += u64::try_from(count).unwrap_or(0),
                        _ => left.push(group),
                    }
                }
                groups = left;
            }
        }
        let unlinks = groups.iter().map(|group| self.unlink_group(group));
        for unlinked in join_all(unlinks).await {
            deleted += unlinked?;
        }
        Ok(deleted)
    }

    /// `UNLINK` of keys on one server (one slot on a Cluster); with replicated invalidation,
    /// followed by `WAIT` as an invalidation is (see [`RedisStore::delete`]).
    async fn unlink_group<K: redis::ToRedisArgs>(&self, keys: &[K]) -> Result<u64, Error> {
        let Some(replicated) = &self.replicated else {
            return self.run(redis::cmd("UNLINK").arg(keys)).await;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("UNLINK")
            .arg(keys)
            .cmd("WAIT")
            .arg(replicated.replicas)
            .arg(u64::try_from(replicated.timeout.as_millis()).unwrap_or(u64::MAX));
        let mut connection = replicated.connection.clone();
        let (deleted, acknowledged): (u64, usize) = pipe.query_async(&mut connection).await?;
        if acknowledged < replicated.replicas {
            return Err(Error::NotReplicated {
                acknowledged,
                wanted: replicated.replicas,
            });
        }
        Ok(deleted)
    }
}
