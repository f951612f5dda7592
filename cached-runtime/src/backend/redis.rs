//! Redis through redis-rs's multiplexed `ConnectionManager`: one connection serves every
//! concurrent call and reconnects by itself after a failure.

use crate::Error;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue};
use std::time::Duration;

#[derive(Clone)]
pub(crate) struct RedisBackend {
    connection: ConnectionManager,
    timeout: Duration,
}

impl RedisBackend {
    /// Opens the manager; with `lazy`, the first command connects instead.
    pub(crate) async fn open(client: Client, timeout: Duration, lazy: bool) -> Result<Self, Error> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(2));
        if !lazy {
            // One plain connection first: it fails with the real cause ("connection
            // refused") where the manager would retry until the timeout.
            tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
                .await
                .map_err(|_| Error::Timeout(timeout))??;
        }
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            timeout,
        })
    }

    /// Runs one command, bounded by the timeout.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut connection)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        let seconds = ttl.as_secs().max(1);
        self.run(redis::cmd("SET").arg(key).arg(value).arg("EX").arg(seconds))
            .await
    }

    pub(crate) async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.run(redis::cmd("UNLINK").arg(keys)).await
    }

    pub(crate) async fn ping(&self) -> Result<(), Error> {
        self.run(&redis::cmd("PING")).await
    }
}
