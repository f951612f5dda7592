//! The connection beneath a Redis store, one per topology, all speaking redis-rs's
//! `ConnectionLike` so that every command and script is written once (`redis.rs`); and the
//! client of one node, with the TLS roots it trusts.

use super::sentinel::SentinelConnection;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Client, Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone)]
pub(crate) enum Connection {
    /// One server, through a reconnecting multiplexed connection.
    Single(ConnectionManager),
    /// A Redis Cluster: redis-rs routes each command by its key's slot and follows
    /// `MOVED`/`ASK` and topology changes.
    Cluster(ClusterConnection),
    /// The primary named by Sentinel, followed across failovers.
    Sentinel(SentinelConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
            Connection::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Sentinel(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
            Connection::Sentinel(connection) => connection.get_db(),
        }
    }
}

/// A cluster connection whose pipelines go to the primary of one slot, whatever slots their
/// keys are in (redis-rs refuses a pipeline spanning slots when it routes it by its keys).
/// The node comes from redis-rs's own map of slots, so an address it does not know (a stale
/// topology, a node announcing itself by another name) is never asked for.
pub(crate) struct Routed<'a> {
    cluster: &'a mut ClusterConnection,
    slot: u16,
}

impl<'a> Routed<'a> {
    pub(crate) fn new(cluster: &'a mut ClusterConnection, slot: u16) -> Self {
        Routed { cluster, slot }
    }
}

impl ConnectionLike for Routed<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.cluster.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(self.slot, SlotAddr::Master));
        Box::pin(
            self.cluster
                .route_pipeline(pipeline.clone(), offset, count, route),
        )
    }

    fn get_db(&self) -> i64 {
        self.cluster.get_db()
    }
}

/// The TLS roots a client trusts beyond the system's (nothing to hold without TLS).
#[cfg(feature = "tls")]
pub(crate) type Certificates = redis::TlsCertificates;
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) struct Certificates;

/// Trust `pem`, a CA certificate, beside the system's roots.
#[cfg(feature = "tls")]
pub(crate) fn trusting(pem: Vec<u8>) -> Certificates {
    install_crypto_provider();
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }
}

/// rustls needs a process-wide crypto provider; one already installed is kept.
#[cfg(feature = "tls")]
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client of one node's URL, trusting `certificates` for TLS.
pub(crate) fn node_client(
    url: &str,
    certificates: Option<Certificates>,
) -> redis::RedisResult<Client> {
    #[cfg(feature = "tls")]
    if let (true, Some(certificates)) = (url.starts_with("rediss://"), certificates.clone()) {
        return Client::build_with_tls(url, certificates);
    }
    let _ = certificates;
    Client::open(url)
}
