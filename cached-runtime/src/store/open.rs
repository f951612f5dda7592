//! What each URL scheme opens: `mem://`, one server, a Cluster or a Sentinel-managed
//! primary, with its breakers, and the second connection of replicated invalidations.

use super::Store;
use super::breaker::Breakers;
use super::cluster::{self, Topology};
use super::connection::{Certificates, Connection, node_client};
use super::identity::{self, Signals};
use super::lease::Leases;
use super::redis::{Paused, RedisStore, Replicated};
use super::sentinel::{Configs, SentinelConnection};
use super::single::{self, manager_config};
use crate::Error;
use crate::url::{self, Scheme};
use redis::{Client, IntoConnectionInfo};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What opening a store takes: the builder's settings that concern the store.
pub(crate) struct Settings {
    pub(crate) url: String,
    /// The bound on each operation, connecting included.
    pub(crate) timeout: Duration,
    /// Connect on first use instead of in [`open`].
    pub(crate) lazy: bool,
    pub(crate) leases: Leases,
    pub(crate) max_value_len: usize,
    /// For `mem://`: the total size of the entries kept.
    pub(crate) memory_bytes: u64,
    /// Replicas that must confirm each invalidation, and how long to wait for them.
    pub(crate) replicated: Option<(usize, Duration)>,
    /// TLS roots trusted beyond the system's.
    pub(crate) certificates: Option<Certificates>,
    /// Invalidations write tombstones that live this long, instead of deleting keys.
    pub(crate) tombstones: Option<Duration>,
    /// How long invalidations are kept, to be applied again after a failover or restart.
    pub(crate) replay_window: Duration,
}

/// The nodes a near tier tracks, kept current across topology changes and failovers.
pub(crate) type Nodes = watch::Receiver<Vec<Client>>;

/// Opens the store `settings.url` names (connecting unless lazy), with the nodes its near
/// tier would track (none for `mem://`).
pub(crate) async fn open(settings: &Settings) -> Result<(Store, Option<Nodes>), Error> {
    let redacted = url::redact(&settings.url);
    let invalid = |reason: String| Error::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let not_valid = |err: redis::RedisError| invalid(format!("not a valid Redis URL ({err})"));
    let scheme = Scheme::of(&settings.url).map_err(invalid)?;
    #[cfg(feature = "tls")]
    if scheme.tls() {
        super::connection::install_crypto_provider();
    }
    let (timeout, lazy) = (settings.timeout, settings.lazy);
    let signals = Arc::new(Signals::default());
    let (connection, breakers, nodes) = match scheme {
        Scheme::Memory => return Ok((Store::memory(settings), None)),
        Scheme::Single { .. } => {
            let client = settings.client(&settings.url).map_err(not_valid)?;
            let manager = single::connect(client.clone(), &redacted, timeout, lazy).await?;
            // Nobody changes a single server's address: the sender goes.
            let (_, nodes) = watch::channel(vec![client]);
            let breakers = Arc::new(Breakers::single(redacted.clone()));
            (Connection::Single(manager), breakers, nodes)
        }
        Scheme::Cluster { .. } => {
            let address = url::cluster(&settings.url).map_err(invalid)?;
            let seeds = address.seeds().map_err(not_valid)?;
            let client = cluster::client(seeds, timeout, settings.certificates.clone())
                .map_err(not_valid)?;
            let connection = cluster::connect(&client, &redacted, timeout, lazy).await?;
            let breakers = Arc::new(Breakers::per_primary(redacted.clone()));
            let (sender, nodes) = watch::channel(Vec::new());
            let certificates = settings.certificates.clone();
            let topology = Topology {
                breakers: Arc::downgrade(&breakers),
                nodes: sender,
                node_client: Box::new(move |host_port| {
                    node_client(&address.node(host_port), certificates.clone()).ok()
                }),
            };
            cluster::watch_topology(connection.clone(), topology, timeout);
            (Connection::Cluster(connection), breakers, nodes)
        }
        Scheme::Sentinel { tls } => {
            let address = url::sentinel(&settings.url).map_err(invalid)?;
            let node = address
                .node
                .as_str()
                .into_connection_info()
                .map_err(not_valid)?;
            let mut node_info = redis::sentinel::SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(node.redis_settings().clone());
            if tls {
                node_info = node_info.set_tls_mode(redis::TlsMode::Secure);
            }
            let sentinel = redis::sentinel::SentinelClient::build(
                address.sentinels.clone(),
                address.service.clone(),
                Some(node_info),
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(not_valid)?;
            let configs = Configs {
                calls: manager_config(timeout),
                invalidations: manager_config(settings.invalidation_timeout()),
            };
            let connection = SentinelConnection::open(
                sentinel,
                &address.service,
                &redacted,
                configs,
                timeout,
                lazy,
            )
            .await?;
            let nodes = connection.primaries();
            let breakers = Arc::new(Breakers::single(redacted.clone()));
            (Connection::Sentinel(connection), breakers, nodes)
        }
    };
    let replicated = match settings.replicated {
        Some((replicas, wait)) => Some(Replicated {
            connection: settings.second_connection(&connection)?,
            replicas,
            timeout: wait,
        }),
        None => None,
    };
    // Reads while writes are paused go on a connection of their own (see `Paused`).
    let paused = Paused::new(settings.second_connection(&connection)?, timeout);
    let redis = RedisStore::new(
        connection,
        paused,
        replicated,
        settings.tombstones.is_some(),
    );
    let store = Store::redis(redis, (breakers, signals), settings);
    // The servers as they are now: what changes from here on is a failover or a restart.
    let known = match lazy {
        true => None,
        false => store.run_ids().await.ok().filter(|ids| !ids.is_empty()),
    };
    identity::follow(store.downgrade(), nodes.clone(), known);
    Ok((store, Some(nodes)))
}

impl Settings {
    /// The client of one node's URL.
    fn client(&self, url: &str) -> redis::RedisResult<Client> {
        node_client(url, self.certificates.clone())
    }

    /// A second connection to the same store (connecting on first use), bounded by the
    /// invalidations' timeout: for replicated invalidations (`WAIT` blocks the connection it
    /// runs on, and lookups must not queue behind it), and for reads while writes are paused
    /// (a paused write blocks its connection).
    fn second_connection(&self, connection: &Connection) -> Result<Connection, Error> {
        Ok(match connection {
            Connection::Single(_) => {
                let client = self.client(&self.url)?;
                Connection::Single(redis::aio::ConnectionManager::new_lazy_with_config(
                    client,
                    manager_config(self.invalidation_timeout()),
                )?)
            }
            Connection::Cluster(_) => {
                let address = url::cluster(&self.url).map_err(Error::InvalidConfig)?;
                let seeds = address.seeds()?;
                let timeout = self.invalidation_timeout();
                let client = cluster::client(seeds, timeout, self.certificates.clone())?;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(timeout);
                Connection::Cluster(client.get_pending_async_connection_with_config(config))
            }
            Connection::Sentinel(sentinel) => Connection::Sentinel(sentinel.for_invalidations()),
        })
    }

    /// The bound on an invalidation: the timeout, and the `WAIT` of replicated ones.
    fn invalidation_timeout(&self) -> Duration {
        self.timeout + self.replicated.map_or(Duration::ZERO, |(_, wait)| wait)
    }
}
