//! The batch operations of one group of keys on one server: on a cluster, the keys of one
//! primary, sent to the primary of one of their slots (`route`), or without a route the keys
//! of one hash slot (redis-rs sends a pipeline to the node of its first key and refuses one
//! that spans slots). Each is one round trip. The lookup of a group on one server or of one
//! slot is one transaction, `MGET` of the keys and the [`LEASE_ABSENT`] script, which sets
//! leases only on the keys found absent; the values never enter Lua, so the server's time
//! grows with the number of keys, not with their bytes. The lookup of a primary's group of
//! slots is one `SET key lease NX PX ms GET` per key (the `FETCH` script before 7.0 and with
//! tombstones). A plain `GET` per key replaces the lookup while Redis refuses writes, and
//! while it holds them, on the reads' connection (see [`Paused`]). A fill is one `FILL`
//! script call per key, a release one `RELEASE` call per key.

use super::{
    EXTEND_LEASES, FETCH, FILL, Found, Paused, RELEASE, RedisStore, SCRIPTED, found,
    lookup_command, marked, millis, read, read_paused,
};
use crate::Error;
use crate::store::Fetch;
use crate::store::cluster::slot;
use crate::store::connection::{Connection, Routed};
use crate::store::lease::Lease;
use crate::tombstone::{self, Tombstone};
use redis::{FromRedisValue, Pipeline, RedisError, RedisResult, Script, ScriptInvocation};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// After the `MGET` of its keys, in the same transaction: our lease (`ARGV[1]`, to live
/// `ARGV[2]` ms) on each key absent or holding a tombstone, which the `MGET` reported as
/// such. It reads two bytes of each key: a value never enters Lua.
static LEASE_ABSENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"for _, key in ipairs(KEYS) do
            local head = redis.call('GETRANGE', key, 0, 1)
            if head == '' or head == '{tombstone}' then
              redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
            end
          end
          return 0",
        tombstone = marked(tombstone::KIND),
    ))
});

/// Where a group's pipeline goes on a cluster: the primary of this slot.
type Route = Option<u16>;

impl RedisStore {
    /// Reads every key of the group; with a lease, sets it on each key found absent, each
    /// atomically. One reply per key, in order.
    pub(crate) async fn fetch_group(
        &self,
        keys: &[&str],
        lease: Option<(&Lease, Duration)>,
        route: Route,
    ) -> Result<Vec<Fetch>, Error> {
        let looked_up = match (lease, keys.first()) {
            (Some((lease, lease_ttl)), Some(first)) => {
                let mode = self.lookup_mode.load(Ordering::Relaxed);
                if self.reads_while_paused(mode, first) {
                    let read = self.paused.get_group(keys, route).await;
                    self.read_while_suspect(mode, read.is_ok(), first);
                    return read.map(|values| values.into_iter().map(read_paused).collect());
                }
                (self.lookup_group(keys, lease, lease_ttl, route).await)
                    .inspect_err(|error| self.suspect_pause(error, first))
            }
            _ => self.get_group(keys, route).await,
        };
        match looked_up {
            // As a single lookup: hits stay hits; a miss runs the body, its store refused.
            Err(error) if error.is_refused_write() => self.get_group(keys, route).await,
            looked_up => looked_up,
        }
    }

    async fn get_group(&self, keys: &[&str], route: Route) -> Result<Vec<Fetch>, Error> {
        let values = get_values(&self.connection, keys, route).await?;
        Ok(values.into_iter().map(read).collect())
    }

    async fn lookup_group(
        &self,
        keys: &[&str],
        lease: &Lease,
        lease_ttl: Duration,
        route: Route,
    ) -> Result<Vec<Fetch>, Error> {
        let lease_ms = millis(lease_ttl);
        if route.is_none() {
            return self.fetch_many(keys, lease, lease_ms).await;
        }
        if self.lookup_mode.load(Ordering::Relaxed) & SCRIPTED == 0 {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.add_command(lookup_command(key, lease, lease_ttl));
            }
            let result = self
                .query::<Vec<Option<Vec<u8>>>>(&pipe, route)
                .await
                .map(|values| values.into_iter().map(read).collect())
                .map_err(first_error);
            match &result {
                Err(error) if self.scripted_after(error) => {}
                _ => return result,
            }
        }
        let invocations: Vec<ScriptInvocation> = keys
            .iter()
            .map(|key| {
                let mut invocation = FETCH.prepare_invoke();
                invocation
                    .key(*key)
                    .arg(lease.as_bytes())
                    .arg(lease_ms)
                    .arg("0");
                invocation
            })
            .collect();
        let answers: Vec<Found> = self.invoke_all(&FETCH, &invocations, route).await?;
        Ok(answers
            .into_iter()
            .map(|answer| found(answer, false))
            .collect())
    }

    /// The `MGET` of `keys` and [`LEASE_ABSENT`] on them, in one transaction (`MULTI` ..
    /// `EXEC`), for keys of one server or of one hash slot (where redis-rs routes it by the
    /// first key).
    async fn fetch_many(
        &self,
        keys: &[&str],
        lease: &Lease,
        lease_ms: u64,
    ) -> Result<Vec<Fetch>, Error> {
        let (values,) = loading_script(|load: bool| {
            let mut pipe = redis::pipe();
            if load {
                pipe.load_script(&LEASE_ABSENT).ignore();
            }
            pipe.atomic()
                .cmd("MGET")
                .arg(keys)
                .cmd("EVALSHA")
                .arg(LEASE_ABSENT.get_hash())
                .arg(keys.len())
                .arg(keys)
                .arg(lease.as_bytes())
                .arg(lease_ms)
                .ignore();
            async move { self.query::<(Vec<Option<Vec<u8>>>,)>(&pipe, None).await }
        })
        .await?;
        Ok(values
            .into_iter()
            .map(|value| match value {
                // Replaced by our lease: absent, with the cause of the invalidation.
                Some(bytes) if Tombstone::is_tombstone(&bytes) => {
                    Fetch::Ours(Tombstone::decode(&bytes).map(Box::new))
                }
                value => read(value),
            })
            .collect())
    }

    /// Stores each value, for its TTL, whose key our lease still holds; says, per key,
    /// whether it did.
    pub(crate) async fn fill_group(
        &self,
        entries: &[(&str, &[u8], Duration)],
        lease: &Lease,
        route: Route,
    ) -> Result<Vec<bool>, Error> {
        for (_, value, _) in entries {
            self.check_len(value).await?;
        }
        let invocations: Vec<ScriptInvocation> = entries
            .iter()
            .map(|(key, value, ttl)| {
                let mut invocation = FILL.prepare_invoke();
                invocation
                    .key(*key)
                    .arg(lease.as_bytes())
                    .arg(*value)
                    .arg(millis(*ttl));
                invocation
            })
            .collect();
        let filled: Vec<i64> = self.invoke_all(&FILL, &invocations, route).await?;
        Ok(filled.into_iter().map(|filled| filled == 1).collect())
    }

    /// Sets every key to its value, whatever it holds (leases off, or taking leases over).
    pub(crate) async fn set_group(
        &self,
        entries: &[(&str, &[u8], Duration)],
        route: Route,
    ) -> Result<(), Error> {
        for (_, value, _) in entries {
            self.check_len(value).await?;
        }
        let mut pipe = redis::pipe();
        for (key, value, ttl) in entries {
            pipe.cmd("SET")
                .arg(*key)
                .arg(*value)
                .arg("PX")
                .arg(millis(*ttl))
                .ignore();
        }
        self.query::<()>(&pipe, route).await.map_err(first_error)
    }

    /// Deletes each key our lease still holds.
    pub(crate) async fn release_group(
        &self,
        keys: &[&str],
        lease: &Lease,
        route: Route,
    ) -> Result<(), Error> {
        let invocations: Vec<ScriptInvocation> = keys
            .iter()
            .map(|key| {
                let mut invocation = RELEASE.prepare_invoke();
                invocation.key(*key).arg(lease.as_bytes());
                invocation
            })
            .collect();
        self.invoke_all::<i64>(&RELEASE, &invocations, route)
            .await?;
        Ok(())
    }

    /// Makes each key live `ttl` more while its lease still holds it: one script call for
    /// the group's keys (per hash slot, when the group spans slots of a primary).
    pub(crate) async fn extend_leases(
        &self,
        keys: &[&str],
        leases: &[&Lease],
        ttl: Duration,
        route: Route,
    ) -> Result<(), Error> {
        let mut by_slot: BTreeMap<u16, ScriptInvocation> = BTreeMap::new();
        for (key, lease) in keys.iter().zip(leases) {
            let slot = if route.is_some() { slot(key) } else { 0 };
            let invocation = by_slot.entry(slot).or_insert_with(|| {
                let mut invocation = EXTEND_LEASES.prepare_invoke();
                invocation.arg(millis(ttl));
                invocation
            });
            invocation.key(*key).arg(lease.as_bytes());
        }
        let invocations: Vec<ScriptInvocation> = by_slot.into_values().collect();
        self.invoke_all::<i64>(&EXTEND_LEASES, &invocations, route)
            .await?;
        Ok(())
    }

    /// Runs the invocations of `script` in one pipeline (`EVALSHA` each); if the server lacks
    /// the script, once more with a `SCRIPT LOAD` ahead of them.
    async fn invoke_all<T: FromRedisValue>(
        &self,
        script: &Script,
        invocations: &[ScriptInvocation<'_>],
        route: Route,
    ) -> Result<Vec<T>, Error> {
        loading_script(|load: bool| {
            let mut pipe = redis::pipe();
            if load {
                pipe.load_script(script).ignore();
            }
            for invocation in invocations {
                pipe.invoke_script(invocation);
            }
            async move { self.query::<Vec<T>>(&pipe, route).await }
        })
        .await
    }
}

/// Sends what `request` makes (`load`: with a `SCRIPT LOAD` of its script ahead); if the
/// server lacks the script (`NOSCRIPT`: restarted, flushed, or a replica promoted that never
/// ran it), once more with the load.
async fn loading_script<T, F: Future<Output = RedisResult<T>>>(
    request: impl Fn(bool) -> F,
) -> Result<T, Error> {
    match request(false).await.map_err(first_error) {
        Err(Error::Redis(error)) if error.code() == Some("NOSCRIPT") => {
            request(true).await.map_err(first_error)
        }
        result => result,
    }
}

impl RedisStore {
    /// Sends `pipe`: on a cluster, to the primary of `route` (a slot), if given; else as the connection
    /// routes it.
    async fn query<T: FromRedisValue>(&self, pipe: &Pipeline, route: Route) -> RedisResult<T> {
        query_on(&self.connection, pipe, route).await
    }
}

impl Paused {
    /// [`get_values`] on the reads' connection, bounded by the timeout.
    async fn get_group(&self, keys: &[&str], route: Route) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.bounded(get_values(&self.reads, keys, route)).await
    }
}

/// A `GET` per key (not one `MGET`: the keys may span slots) on `connection`.
async fn get_values(
    connection: &Connection,
    keys: &[&str],
    route: Route,
) -> Result<Vec<Option<Vec<u8>>>, Error> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.get(*key);
    }
    query_on(connection, &pipe, route)
        .await
        .map_err(first_error)
}

/// Sends `pipe` on `connection`: on a cluster with a `route`, to the primary of that slot.
async fn query_on<T: FromRedisValue>(
    connection: &Connection,
    pipe: &Pipeline,
    route: Route,
) -> RedisResult<T> {
    let mut connection = connection.clone();
    match (&mut connection, route) {
        (Connection::Cluster(cluster), Some(slot)) => {
            pipe.query_async(&mut Routed::new(cluster, slot)).await
        }
        (connection, _) => pipe.query_async(connection).await,
    }
}

/// A pipeline's error replies as the first one alone. redis-rs gathers them into one error
/// that keeps the code only of the replies it knows, and `OOM`, `READONLY`, `NOREPLICAS` or
/// `MISCONF` are not among them: without this, a refused write would be taken for any other
/// error (the batch then runs the body for every id, hits included).
fn first_error(error: RedisError) -> Error {
    let first = error
        .clone()
        .into_server_errors()
        .and_then(|errors| errors.first().map(|(_, first)| first.clone()));
    Error::Redis(first.map_or(error, RedisError::from))
}
