//! The batch operations of one group of keys on one server (on a cluster, keys of one hash
//! slot: redis-rs sends a pipeline to the node of its first key and refuses one that spans
//! slots). Each is one pipeline, so one round trip: the lookup is one `SET key lease NX PX
//! ms GET` per key (the `FETCH` script before 7.0 and with tombstones, a plain `MGET` while
//! Redis refuses writes), a fill one `FILL` script call per key, a release one `RELEASE`
//! call per key.

use super::{FETCH, FILL, Found, RELEASE, RedisStore, found, millis, read};
use crate::Error;
use crate::store::Fetch;
use crate::store::lease::Lease;
use redis::{FromRedisValue, RedisError, Script, ScriptInvocation};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl RedisStore {
    /// Reads every key of the group; with a lease, sets it on each key found absent, each
    /// atomically. One reply per key, in order.
    pub(crate) async fn fetch_group(
        &self,
        keys: &[&str],
        lease: Option<(&Lease, Duration)>,
    ) -> Result<Vec<Fetch>, Error> {
        let looked_up = match lease {
            Some((lease, lease_ttl)) => self.lookup_group(keys, lease, lease_ttl).await,
            None => self.mget(keys).await,
        };
        match looked_up {
            // As a single lookup: hits stay hits; a miss runs the body, its store refused.
            Err(error) if error.is_refused_write() => self.mget(keys).await,
            looked_up => looked_up,
        }
    }

    async fn mget(&self, keys: &[&str]) -> Result<Vec<Fetch>, Error> {
        let values: Vec<Option<Vec<u8>>> = self.run(redis::cmd("MGET").arg(keys)).await?;
        Ok(values.into_iter().map(read).collect())
    }

    async fn lookup_group(
        &self,
        keys: &[&str],
        lease: &Lease,
        lease_ttl: Duration,
    ) -> Result<Vec<Fetch>, Error> {
        let lease_ms = millis(lease_ttl);
        if !self.scripted_lookup.load(Ordering::Relaxed) {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(lease.as_bytes())
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .arg("GET");
            }
            let mut connection = self.connection.clone();
            let result = pipe
                .query_async::<Vec<Option<Vec<u8>>>>(&mut connection)
                .await
                .map(|values| values.into_iter().map(read).collect())
                .map_err(first_error);
            // As `lookup`: a server before 7.0 rejects `SET .. GET` as a syntax error.
            let rejected = matches!(&result, Err(Error::Redis(error)) if error.to_string().contains("syntax error"));
            if !rejected {
                return result;
            }
            self.scripted_lookup.store(true, Ordering::Relaxed);
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
        let answers: Vec<Found> = self.invoke_all(&FETCH, &invocations).await?;
        Ok(answers
            .into_iter()
            .map(|answer| found(answer, false))
            .collect())
    }

    /// Stores each value, for its TTL, whose key our lease still holds; says, per key,
    /// whether it did.
    pub(crate) async fn fill_group(
        &self,
        entries: &[(&str, &[u8], Duration)],
        lease: &Lease,
    ) -> Result<Vec<bool>, Error> {
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
        let filled: Vec<i64> = self.invoke_all(&FILL, &invocations).await?;
        Ok(filled.into_iter().map(|filled| filled == 1).collect())
    }

    /// Sets every key to its value, whatever it holds (leases off, or taking leases over).
    pub(crate) async fn set_group(&self, entries: &[(&str, &[u8], Duration)]) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        for (key, value, ttl) in entries {
            pipe.cmd("SET")
                .arg(*key)
                .arg(*value)
                .arg("PX")
                .arg(millis(*ttl))
                .ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(first_error)
    }

    /// Deletes each key our lease still holds.
    pub(crate) async fn release_group(&self, keys: &[&str], lease: &Lease) -> Result<(), Error> {
        let invocations: Vec<ScriptInvocation> = keys
            .iter()
            .map(|key| {
                let mut invocation = RELEASE.prepare_invoke();
                invocation.key(*key).arg(lease.as_bytes());
                invocation
            })
            .collect();
        self.invoke_all::<i64>(&RELEASE, &invocations).await?;
        Ok(())
    }

    /// Runs the invocations of `script` in one pipeline (`EVALSHA` each); if the server lacks
    /// the script, once more with a `SCRIPT LOAD` ahead of them.
    async fn invoke_all<T: FromRedisValue>(
        &self,
        script: &Script,
        invocations: &[ScriptInvocation<'_>],
    ) -> Result<Vec<T>, Error> {
        let run = |load: bool| {
            let mut pipe = redis::pipe();
            if load {
                pipe.load_script(script).ignore();
            }
            for invocation in invocations {
                pipe.invoke_script(invocation);
            }
            let mut connection = self.connection.clone();
            async move { pipe.query_async::<Vec<T>>(&mut connection).await }
        };
        match run(false).await.map_err(first_error) {
            Err(Error::Redis(error)) if error.code() == Some("NOSCRIPT") => {
                run(true).await.map_err(first_error)
            }
            result => result,
        }
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
