//! Redis through redis-rs's multiplexed `ConnectionManager`: one connection serves every
//! concurrent call and reconnects by itself after a failure. A lookup is one native
//! `SET .. NX GET` (read, or take the fill lease if absent); a fill is a Lua script (store
//! only while our lease holds the key). Each is one round trip and atomic on the server.

use crate::Error;
use crate::lease::Lease;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Cmd, FromRedisValue, Script, ScriptInvocation};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// For servers before 7.0: GET; if absent, SET the caller's lease marker with a short
/// expiry and return nil.
static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local value = redis.call('GET', KEYS[1])
          if value then return value end
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return false",
    )
});

/// FETCH, returning `{value, remaining ttl in ms}` for a value (for the near cache).
static FETCH_WITH_TTL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local value = redis.call('GET', KEYS[1])
          if value then return {value, redis.call('PTTL', KEYS[1])} end
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return false",
    )
});

/// SET the value only while the caller's lease still holds the key.
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
            return 1
          end
          return 0",
    )
});

/// DEL the key only while the caller's lease still holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

#[derive(Clone)]
pub(crate) struct RedisBackend {
    connection: ConnectionManager,
    /// Set once the server rejected `SET .. NX GET` (Redis before 7.0).
    scripted_lookup: Arc<AtomicBool>,
}

impl RedisBackend {
    /// Opens the manager; unless `lazy`, first checks that Redis answers.
    pub(crate) async fn open(client: Client, timeout: Duration, lazy: bool) -> Result<Self, Error> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(2))
            // Fail a request with the real cause (refused credentials, refused connection)
            // rather than retrying until the timeout; the next request reconnects.
            .set_number_of_retries(0);
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
            scripted_lookup: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs one command. The connection's own response and connection timeouts (both the
    /// cache's timeout) bound it: a second timer here would only cost time on every call.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        Ok(cmd.query_async(&mut connection).await?)
    }

    /// Runs one script (EVALSHA, loading it once if the server lacks it), bounded likewise.
    async fn invoke<T: FromRedisValue>(&self, script: &ScriptInvocation<'_>) -> Result<T, Error> {
        let mut connection = self.connection.clone();
        Ok(script.invoke_async(&mut connection).await?)
    }

    /// `SET key lease NX PX ms GET`: the value, or nil after setting our lease, in one
    /// native command (Redis 7.0 and later; older servers get the `FETCH` script).
    fn set_lease_if_absent(key: &str, lease: &Lease, lease_ttl: Duration) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(lease.as_bytes())
            .arg("NX")
            .arg("PX")
            .arg(lease_ttl.as_millis().max(1) as u64)
            .arg("GET");
        cmd
    }

    /// Whether to use the native lookup: true until a server rejects `SET .. NX GET`.
    fn native_lookup(&self, result: &Result<impl Sized, Error>) -> bool {
        let rejected = matches!(result, Err(Error::Redis(error)) if error.to_string().contains("syntax error"));
        if rejected {
            self.scripted_lookup.store(true, Ordering::Relaxed);
        }
        !rejected
    }

    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: &Lease,
        lease_ttl: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        if !self.scripted_lookup.load(Ordering::Relaxed) {
            let result = self
                .run(&Self::set_lease_if_absent(key, lease, lease_ttl))
                .await;
            if self.native_lookup(&result) {
                return result;
            }
        }
        let millis = lease_ttl.as_millis().max(1) as u64;
        self.invoke(FETCH.key(key).arg(lease.as_bytes()).arg(millis))
            .await
    }

    /// As [`fetch`](Self::fetch), with the value's remaining time to live (one pipeline).
    pub(crate) async fn fetch_with_ttl(
        &self,
        key: &str,
        lease: &Lease,
        lease_ttl: Duration,
    ) -> Result<Option<(Vec<u8>, i64)>, Error> {
        if !self.scripted_lookup.load(Ordering::Relaxed) {
            let mut pipe = redis::pipe();
            pipe.add_command(Self::set_lease_if_absent(key, lease, lease_ttl))
                .cmd("PTTL")
                .arg(key);
            let mut connection = self.connection.clone();
            let result: Result<(Option<Vec<u8>>, i64), Error> =
                pipe.query_async(&mut connection).await.map_err(Error::from);
            if self.native_lookup(&result) {
                return result.map(|(value, ttl)| value.map(|value| (value, ttl)));
            }
        }
        let millis = lease_ttl.as_millis().max(1) as u64;
        self.invoke(FETCH_WITH_TTL.key(key).arg(lease.as_bytes()).arg(millis))
            .await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.run(redis::cmd("GET").arg(key)).await
    }

    /// `SET .. EX` for whole seconds, `SET .. PX` otherwise (short leases).
    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if ttl.subsec_nanos() == 0 {
            cmd.arg("EX").arg(ttl.as_secs().max(1));
        } else {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.run(&cmd).await
    }

    pub(crate) async fn fill(
        &self,
        key: &str,
        lease: &Lease,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, Error> {
        let seconds = ttl.as_secs().max(1);
        let filled: i64 = self
            .invoke(FILL.key(key).arg(lease.as_bytes()).arg(value).arg(seconds))
            .await?;
        Ok(filled == 1)
    }

    pub(crate) async fn release(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        self.invoke(RELEASE.key(key).arg(lease.as_bytes())).await
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
