//! One Redis server (TCP or a Unix socket): redis-rs's reconnecting multiplexed
//! `ConnectionManager`, every request bounded by the cache's timeout.

use crate::Error;
use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// The single-node connection manager's settings: every request bounded by `timeout`.
pub(crate) fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_max_delay(Duration::from_secs(2))
        // Fail a request with the real cause (refused credentials, refused connection)
        // rather than retrying until the timeout; the next request reconnects.
        .set_number_of_retries(0)
}

/// One server's connection; unless `lazy`, first checks that Redis answers at `address`
/// (the redacted URL, named in the error).
pub(crate) async fn connect(
    client: Client,
    address: &str,
    timeout: Duration,
    lazy: bool,
) -> Result<ConnectionManager, Error> {
    if !lazy {
        // One plain connection first: it fails with the real cause ("connection
        // refused") where the manager would retry until the timeout.
        let connect_error = |reason: String| Error::Connect {
            address: address.to_owned(),
            reason,
        };
        let mut connection =
            tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| connect_error(format!("no answer within {timeout:?}")))?
                .map_err(|error| connect_error(error.to_string()))?;
        // A cluster node answers single-node URLs too, but only for its own slots: every
        // other key would be redirected, and skip the cache.
        let info: Result<String, _> = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut connection)
            .await;
        if info.is_ok_and(|info| info.contains("cluster_enabled:1")) {
            return Err(Error::InvalidUrl {
                url: address.to_owned(),
                reason: "this server is a Redis Cluster node: connect with \
                         `redis+cluster://host:port[,host:port...]`"
                    .into(),
            });
        }
    }
    Ok(ConnectionManager::new_lazy_with_config(
        client,
        manager_config(timeout),
    )?)
}
