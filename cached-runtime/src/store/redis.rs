//! Redis, on one server, a Cluster or a Sentinel-managed primary ([`Connection`]): each
//! multiplexed, so that one connection (per node) serves every concurrent call, and
//! reconnecting by itself after a failure. A lookup is one native `SET .. NX GET` (read, or
//! take the fill lease if absent); a fill is a Lua script (store only while our lease holds
//! the key). Each touches one key, so it routes by slot on a cluster, and each is one round
//! trip and atomic on the server. A tagged lookup on one server is the same `SET .. NX GET`
//! pipelined with an `MGET` of its tags.
//!
//! Redis-specific policy lives here: the script fallback for servers before 7.0, the plain
//! `GET` when Redis refuses writes or holds them (`CLIENT PAUSE .. WRITE`, see [`Paused`]),
//! the shaping of TTLs into `EX` or `PX`, and replicated invalidation (`UNLINK` followed by
//! `WAIT`).

mod batch;
mod clear;

use super::connection::Connection;
use super::tags::{VERSION_LEN, fresh_version};
use super::{Bytes, Fetch, Peeked};
use crate::Error;
use crate::entry::MARKER;
use crate::freshness;
use crate::key::is_tag_key;
use crate::store::lease::Lease;
use crate::task::spawn_detached;
use crate::tombstone::{self, Tombstone};
use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, Script, ScriptInvocation, Value};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// For servers before 7.0, and with tombstones: GET; if absent or a tombstone, SET the
/// caller's lease marker with a short expiry. Returns nil when the key was absent, else the
/// bytes read, their PTTL in ms (with `ARGV[3] == '1'`; else -1) and 1 when they were a
/// tombstone that the lease replaced (0 for a value or another caller's lease).
static FETCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local value = redis.call('GET', KEYS[1])
          if value and string.sub(value, 1, 2) ~= '{tombstone}' then
            if ARGV[3] == '1' then return {{value, redis.call('PTTL', KEYS[1]), 0}} end
            return {{value, -1, 0}}
          end
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          if value then return {{value, -1, 1}} end
          return false",
        tombstone = marked(tombstone::KIND),
    ))
});

/// What the [`FETCH`] script answers.
type Found = Option<(Vec<u8>, i64, i64)>;

/// What a lookup found, from the [`FETCH`] script's answer (with the value's TTL if wanted).
fn found(found: Found, want_ttl: bool) -> Fetch {
    match found {
        None => Fetch::Ours(None),
        Some((tombstone, _, 1)) => Fetch::Ours(Tombstone::decode(&tombstone).map(Box::new)),
        Some((value, millis, _)) => {
            Fetch::from_read(Some(Bytes::Owned(value)), want_ttl.then(|| pttl(millis)))
        }
    }
}

/// A `PTTL` reply as a duration (none left for the negative ones).
fn pttl(millis: i64) -> Duration {
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// SET the value (to live `ARGV[3]` ms) only while the caller's lease still holds the key.
static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
          end
          return 0",
    )
});

/// Claims the refresh of a fresh-until envelope (see `freshness.rs`) at byte `ARGV[1]` of
/// the key: only if the envelope is the one the caller read (its fresh-until, `ARGV[2]`) and
/// no claim is current at `ARGV[3]` (ms since the epoch); writes the claim (`ARGV[4]`) in
/// place, which keeps the key's TTL.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    use freshness::{CLAIM_AT, CLAIMED_UNTIL, FRESH_UNTIL, HEADER_LEN};
    let envelope = marked(freshness::KIND);
    Script::new(&format!(
        r"local at = tonumber(ARGV[1])
          local head = redis.call('GETRANGE', KEYS[1], at, at + {header_last})
          if string.len(head) < {HEADER_LEN} or string.sub(head, 1, {fresh_end}) ~= '{envelope}' .. ARGV[2] then
            return 0
          end
          if tonumber(string.sub(head, {claimed_first}, {claimed_end})) > tonumber(ARGV[3]) then return 0 end
          redis.call('SETRANGE', KEYS[1], at + {CLAIM_AT}, ARGV[4])
          return 1",
        header_last = HEADER_LEN - 1,
        fresh_end = FRESH_UNTIL.end,
        claimed_first = CLAIMED_UNTIL.start + 1,
        claimed_end = CLAIMED_UNTIL.end,
    ))
});

/// Puts the caller's lease (`ARGV[3]`, for `ARGV[4]` ms) on the key only if it still holds
/// the fresh-until envelope (at byte `ARGV[1]`) the caller read (fresh until `ARGV[2]`): of
/// the callers that read an entry past its windows, one takes it over, the others find its
/// lease.
static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    let envelope = marked(freshness::KIND);
    Script::new(&format!(
        r"local at = tonumber(ARGV[1])
          if redis.call('GETRANGE', KEYS[1], at, at + {fresh_last}) ~= '{envelope}' .. ARGV[2] then
            return 0
          end
          redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
          return 1",
        fresh_last = freshness::FRESH_UNTIL.end - 1,
    ))
});

/// Stores a refresh (`ARGV[3]`, to live `ARGV[4]` ms; an empty value deletes the entry)
/// only while the caller's claim (`ARGV[2]`, at byte `ARGV[1]`) is still in the entry: an
/// invalidation deleted it with the entry, a newer claim overwrote it.
static REPLACE_CLAIMED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local at = tonumber(ARGV[1])
          if redis.call('GETRANGE', KEYS[1], at, at + {claimant_last}) ~= ARGV[2] then return 0 end
          if ARGV[3] == '' then
            redis.call('DEL', KEYS[1])
          else
            redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
          end
          return 1",
        claimant_last = freshness::CLAIMANT.len() - 1,
    ))
});

/// The first two bytes of a marked form of `kind` (a fresh-until envelope, a tombstone), as
/// a Lua string literal's contents.
fn marked(kind: u8) -> String {
    format!("\\{}{}", MARKER, char::from(kind))
}

/// DEL the key only while the caller's lease still holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// Writes `KEYS[1]` and deletes it at once: one write, so one tracking push per connection
/// (the near tier's eviction-lag probe), and nothing left behind.
static PROBE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SET', KEYS[1], '', 'PX', 1000)
          redis.call('UNLINK', KEYS[1])
          return 0",
    )
});

/// Makes each key live `ARGV[1]` ms more while its lease (`ARGV[i + 1]`) still holds it:
/// the fills of one process kept alive while their bodies run.
static EXTEND_LEASES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"for i, key in ipairs(KEYS) do
            if redis.call('GET', key) == ARGV[i + 1] then
              redis.call('PEXPIRE', key, ARGV[1])
            end
          end
          return 0",
    )
});

/// Each tag's version: read, or created from the caller's candidate (`ARGV[1]`, 8 bytes a
/// tag) to live `ARGV[2]` ms when absent. Returns the versions, concatenated. Called only
/// for tags a plain read found absent.
static READ_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local versions = {}
          for i, key in ipairs(KEYS) do
            local version = redis.call('GET', key)
            if not version then
              version = string.sub(ARGV[1], i * 8 - 7, i * 8)
              redis.call('SET', key, version, 'PX', ARGV[2])
            end
            versions[i] = version
          end
          return table.concat(versions)",
    )
});

/// The inspection page's read of one key, atomic: its type, its `PTTL` (-1: no expiry,
/// -2: absent) and, for a string, its bytes (empty for other types). `TYPE` first: a
/// `GET` of a hash or a list under the prefix would fail the whole read.
static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local kind = redis.call('TYPE', KEYS[1]).ok
          local ttl = redis.call('PTTL', KEYS[1])
          if kind ~= 'string' then return {kind, ttl, ''} end
          return {kind, ttl, redis.call('GET', KEYS[1])}",
    )
});

/// Makes each existing tag key live at least `ARGV[1]` ms more (never shorter).
static EXTEND_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"for _, key in ipairs(KEYS) do
            local left = redis.call('PTTL', key)
            if left >= 0 and left < tonumber(ARGV[1]) then
              redis.call('PEXPIRE', key, ARGV[1])
            end
          end
          return 0",
    )
});

/// What a plain read (`GET`, or `SET .. NX GET`, which sets nothing over a value, a lease or
/// a tombstone) found: a tombstone read so is returned as a value, which does not decode.
fn read(value: Option<Vec<u8>>) -> Fetch {
    Fetch::from_read(value.map(Bytes::Owned), None)
}

/// The error of a reply of the wrong shape.
fn unexpected(what: &'static str) -> Error {
    RedisError::from((ErrorKind::UnexpectedReturnType, what)).into()
}

/// `SET key lease NX PX ms GET`: read `key`, or take the fill lease if it is absent.
fn lookup_command(key: &str, lease: &Lease, lease_ttl: Duration) -> Cmd {
    // Sized up front: growing the buffers argument by argument costs several reallocations
    // per lookup.
    let mut set = Cmd::with_capacity(7, key.len() + lease.as_bytes().len() + 32);
    set.arg("SET")
        .arg(key)
        .arg(lease.as_bytes())
        .arg("NX")
        .arg("PX")
        .arg(millis(lease_ttl))
        .arg("GET");
    set
}

/// A duration in whole milliseconds, at least one (Redis rejects `PX 0`).
/// The `run_id:` fields of `INFO` replies, however nested (a cluster's are per node).
fn collect_run_ids(reply: &Value, ids: &mut BTreeSet<String>) {
    let text = match reply {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes),
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => text.into(),
        Value::Array(values) | Value::Set(values) => {
            values.iter().for_each(|value| collect_run_ids(value, ids));
            return;
        }
        Value::Map(pairs) => {
            pairs
                .iter()
                .for_each(|(_, value)| collect_run_ids(value, ids));
            return;
        }
        _ => return,
    };
    ids.extend(
        text.lines()
            .filter_map(|line| line.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned()),
    );
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The least `proto-max-bulk-len` Redis accepts (1 MiB): a value up to it is sent without
/// looking.
const MIN_BULK_LEN: usize = 1 << 20;
/// Redis's default `proto-max-bulk-len` (512 MiB), assumed when the server does not say
/// (`CONFIG` refused, as managed services do).
const DEFAULT_BULK_LEN: u64 = 512 << 20;

/// Bits of [`RedisStore::lookup_mode`]; none set: `SET .. NX GET`, the common case.
/// The `FETCH` script: set once the server rejected `SET .. NX GET` (Redis before 7.0), and
/// from the start with tombstones (`SET .. NX` would not replace one, the script does).
const SCRIPTED: u8 = 1;
/// A lookup timed out: the next ones read on [`Paused::reads`] to see whether Redis still
/// serves reads (writes paused) or nothing (down).
const SUSPECT: u8 = 2;
/// Redis serves reads but holds writes: lookups read, until a write answers again.
const PAUSED: u8 = 4;

pub(crate) struct RedisStore {
    connection: Connection,
    /// How lookups are made: [`SCRIPTED`], [`SUSPECT`], [`PAUSED`] (one byte read per
    /// lookup, so that the common case costs what one flag did).
    lookup_mode: AtomicU8,
    paused: Paused,
    /// The server's `proto-max-bulk-len` (0: not read yet), see [`RedisStore::check_len`].
    bulk_len: AtomicU64,
    /// With replicated invalidation: a connection of its own (`WAIT` blocks the connection
    /// it runs on), and how many replicas must acknowledge within how long.
    replicated: Option<Replicated>,
}

/// Writes held by Redis (`CLIENT PAUSE .. WRITE`, as `FAILOVER` and managed services pause
/// them): no error, only silence. A lookup is a write, so it waits until the cache's timeout,
/// and on the multiplexed connection everything queued behind it waits too. After a lookup
/// times out, the next one is a `GET` on a connection of its own; if Redis answers it, writes
/// are paused and lookups stay plain reads there (no lease: a miss runs its body and stores
/// nothing) until a probe (a write that changes nothing, sent on the stuck connection, so it
/// answers as soon as the paused commands run) answers.
pub(crate) struct Paused {
    /// Reads only: never queued behind a paused write.
    reads: Connection,
    /// The cache's timeout, bounding each read here (the connection's own may be longer).
    timeout: Duration,
    probe: Arc<Probe>,
    /// The key whose lookup timed out last: the probe goes to its server (on a Cluster,
    /// the paused primary, not another one that would answer at once).
    timed_out: Mutex<Option<String>>,
}

/// The write probe of [`Paused`], which runs in a task of its own.
#[derive(Default)]
struct Probe {
    /// A probe is waiting for its answer.
    in_flight: AtomicBool,
    /// A probe was answered: writes flow again.
    answered: AtomicBool,
}

impl Paused {
    /// `reads`: a second connection to the store, used only while writes are paused.
    pub(crate) fn new(reads: Connection, timeout: Duration) -> Paused {
        Paused {
            reads,
            timeout,
            probe: Arc::default(),
            timed_out: Mutex::default(),
        }
    }

    /// `GET key` on the reads' connection, bounded by the timeout.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut reads = self.reads.clone();
        let mut get = redis::cmd("GET");
        get.arg(key);
        self.bounded(async move { Ok(get.query_async(&mut reads).await?) })
            .await
    }

    /// `read`, a read on the reads' connection, bounded by the cache's timeout (the
    /// connection's own may be longer).
    async fn bounded<T>(&self, read: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, read)
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }

    /// Sends the write probe on `connection` (where the paused lookups wait), unless one is
    /// waiting for its answer: `SETRANGE key 0 ""`, a write that changes nothing (it creates
    /// no key, modifies none, and so notifies no tracking client). `key` routes it to the
    /// paused server on a cluster: the one whose lookup timed out, else `key`'s.
    fn probe(&self, connection: &Connection, key: &str) {
        if self.probe.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let timed_out = self
            .timed_out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let key = timed_out.unwrap_or_else(|| key.to_owned());
        let (mut connection, probe) = (connection.clone(), self.probe.clone());
        let spawned = spawn_detached(async move {
            let answer = redis::cmd("SETRANGE")
                .arg(&key)
                .arg(0)
                .arg("")
                .query_async::<redis::Value>(&mut connection)
                .await;
            // Any answer but silence (a value, an error reply, a closed connection) ends
            // the pause for lookups: they write again, and a failure reaches the breaker.
            if !answer.is_err_and(|error| error.is_timeout()) {
                probe.answered.store(true, Ordering::Release);
            }
            probe.in_flight.store(false, Ordering::Release);
        });
        if !spawned {
            self.probe.in_flight.store(false, Ordering::Release);
        }
    }
}

/// What a `GET` made while writes are paused found: a value is a hit; nothing, another
/// caller's lease (its fill waits for the pause too) or a tombstone is absent, for the
/// caller to run its body and store nothing.
fn read_paused(value: Option<Vec<u8>>) -> Fetch {
    match value {
        Some(bytes) if !Lease::is_marker(&bytes) && !Tombstone::is_tombstone(&bytes) => {
            Fetch::Hit(Bytes::Owned(bytes), None)
        }
        _ => Fetch::Absent,
    }
}

pub(crate) struct Replicated {
    pub(crate) connection: Connection,
    pub(crate) replicas: usize,
    pub(crate) timeout: Duration,
}

impl RedisStore {
    pub(crate) fn new(
        connection: Connection,
        paused: Paused,
        replicated: Option<Replicated>,
        tombstones: bool,
    ) -> RedisStore {
        RedisStore {
            connection,
            lookup_mode: AtomicU8::new(if tombstones { SCRIPTED } else { 0 }),
            paused,
            bulk_len: AtomicU64::new(0),
            replicated,
        }
    }

    /// Fails a value longer than the server's `proto-max-bulk-len` before it is sent: Redis
    /// answers one with a protocol error and closes the connection, which every call sharing
    /// it would pay for (and the breaker count). Values up to 1 MiB, the least the limit can
    /// be, are sent without looking; the limit is read (`CONFIG GET`) at the first longer one.
    async fn check_len(&self, value: &[u8]) -> Result<(), Error> {
        if value.len() <= MIN_BULK_LEN {
            return Ok(());
        }
        let mut limit = self.bulk_len.load(Ordering::Relaxed);
        if limit == 0 {
            let mut config = redis::cmd("CONFIG");
            config.arg("GET").arg("proto-max-bulk-len");
            limit = match self.run::<HashMap<String, u64>>(&config).await {
                Ok(config) => config.into_values().next().unwrap_or(DEFAULT_BULK_LEN),
                // The server did not answer: look again at the next long value.
                Err(error @ Error::Timeout(_)) => return Err(error),
                Err(Error::Redis(error)) if error.is_io_error() || error.is_timeout() => {
                    return Err(Error::Redis(error));
                }
                // `CONFIG` not allowed here, or an answer of another shape: Redis's default.
                Err(_) => DEFAULT_BULK_LEN,
            };
            self.bulk_len.store(limit, Ordering::Relaxed);
        }
        if u64::try_from(value.len()).unwrap_or(u64::MAX) <= limit {
            return Ok(());
        }
        Err(Error::Redis(RedisError::from((
            ErrorKind::Client,
            "value longer than the server's proto-max-bulk-len",
            format!("{} bytes, limit {limit}", value.len()),
        ))))
    }

    /// `"redis"`, `"redis-cluster"` or `"redis-sentinel"`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.connection {
            Connection::Single(_) => "redis",
            Connection::Cluster(_) => "redis-cluster",
            Connection::Sentinel(_) => "redis-sentinel",
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// Whether lookups read because Redis holds writes, or seems to (see [`Paused`]).
    pub(crate) fn writes_paused(&self) -> bool {
        self.lookup_mode.load(Ordering::Relaxed) & (SUSPECT | PAUSED) != 0
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

    /// Reads `key`; if it is absent and a lease is given, sets the lease on it, atomically.
    /// With `want_ttl`, a value comes with its remaining time to live. When Redis refuses
    /// the lease's write but still serves reads (`OOM`, `READONLY`, ...), a plain `GET`
    /// keeps hits hits (a miss then runs its body without a lease, and its store is refused).
    /// When it holds writes without a word (see [`Paused`]), a lease's lookup that timed out
    /// makes the next ones read.
    pub(crate) async fn fetch(
        &self,
        key: &str,
        lease: Option<(&Lease, Duration)>,
        want_ttl: bool,
    ) -> Result<Fetch, Error> {
        let looked_up = match lease {
            Some((lease, lease_ttl)) => self.lookup(key, lease, lease_ttl, want_ttl).await,
            None => self.get(key).await.map(read),
        };
        match looked_up {
            Err(error) if error.is_refused_write() => Ok(read(Box::pin(self.get(key)).await?)),
            looked_up => looked_up,
        }
    }

    /// Makes the next lookups read when `error`, `key`'s lookup's, is a timeout (see
    /// [`Paused`]); the write probe goes to `key`'s server.
    fn suspect_pause(&self, error: &Error, key: &str) {
        if error.is_timeout() {
            *self
                .paused
                .timed_out
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(key.to_owned());
            self.lookup_mode.fetch_or(SUSPECT, Ordering::Relaxed);
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.run(Cmd::with_capacity(2, key.len() + 3).arg("GET").arg(key))
            .await
    }

    /// `SET key lease NX PX ms GET` (with `PTTL key` in the same pipeline when the TTL is
    /// wanted), or the `FETCH` script on servers before 7.0 and with tombstones.
    async fn lookup(
        &self,
        key: &str,
        lease: &Lease,
        lease_ttl: Duration,
        want_ttl: bool,
    ) -> Result<Fetch, Error> {
        let mode = self.lookup_mode.load(Ordering::Relaxed);
        if mode != 0 && mode != SCRIPTED {
            return Box::pin(self.lookup_paused(key, (lease, lease_ttl), want_ttl, mode)).await;
        }
        if mode == 0 {
            let set = lookup_command(key, lease, lease_ttl);
            let result = if want_ttl {
                let mut pipe = redis::pipe();
                pipe.add_command(set).cmd("PTTL").arg(key);
                let mut connection = self.connection.clone();
                // Boxed, as the script below: a lookup's future is the size of the common case.
                Box::pin(pipe.query_async::<(Option<Vec<u8>>, i64)>(&mut connection))
                    .await
                    .map(|(value, millis)| {
                        Fetch::from_read(value.map(Bytes::Owned), Some(pttl(millis)))
                    })
                    .map_err(Error::from)
            } else {
                self.run(&set).await.map(read)
            };
            let Err(error) = &result else {
                return result;
            };
            if !self.scripted_after(error) {
                self.suspect_pause(error, key);
                return result;
            }
        }
        let mut invocation = FETCH.prepare_invoke();
        invocation
            .key(key)
            .arg(lease.as_bytes())
            .arg(millis(lease_ttl))
            .arg(if want_ttl { "1" } else { "0" });
        let answer = Box::pin(self.invoke(&invocation)).await;
        Ok(found(
            answer.inspect_err(|error| self.suspect_pause(error, key))?,
            want_ttl,
        ))
    }

    /// Whether `error`, a `SET .. GET` lookup's, is the syntax error of a server before 7.0,
    /// the only signal it gives: then from now on this store looks up with the script.
    fn scripted_after(&self, error: &Error) -> bool {
        let rejected =
            matches!(error, Error::Redis(error) if error.to_string().contains("syntax error"));
        if rejected {
            self.lookup_mode.fetch_or(SCRIPTED, Ordering::Relaxed);
        }
        rejected
    }

    /// Whether [`fetch_with_tags`](Self::fetch_with_tags) serves a lookup: on one server (a
    /// cluster's tags live on other slots), in the common mode (`SET .. NX GET`: not before
    /// Redis 7.0, with tombstones or while writes may be paused) and without the TTL.
    pub(crate) fn pipelines_tags(&self, want_ttl: bool) -> bool {
        !want_ttl && !self.is_cluster() && self.lookup_mode.load(Ordering::Relaxed) == 0
    }

    /// [`fetch`](Self::fetch) with a lease and [`read_tags`](Self::read_tags) in one
    /// pipeline (see [`pipelines_tags`](Self::pipelines_tags)): `SET .. NX GET` and `MGET`
    /// travel as one message and come back as one reply, where sent apart each is a request
    /// of its own through the connection. The same round trip as apart; each command's
    /// error is handled as theirs (a refused lease's write reads with `GET`, a server
    /// before 7.0 takes the script).
    pub(crate) async fn fetch_with_tags(
        &self,
        key: &str,
        (lease, lease_ttl): (&Lease, Duration),
        tags: &[String],
        ttl: Duration,
    ) -> Result<(Fetch, Vec<u8>), Error> {
        let mut mget = Cmd::with_capacity(
            1 + tags.len(),
            4 + tags.iter().map(String::len).sum::<usize>(),
        );
        mget.arg("MGET").arg(tags);
        let mut pipe = redis::Pipeline::with_capacity(2);
        pipe.add_command(lookup_command(key, lease, lease_ttl))
            .add_command(mget);
        let mut connection = self.connection.clone();
        // Each command's reply on its own, errors included (a refused `SET` must not lose the
        // versions), read off as it is: `Pipeline::query_async`, `Value::extract_error` and
        // conversions to owned types cost several hundred instructions per hit.
        let mut replies = match connection.req_packed_commands(&pipe, 0, 2).await {
            Ok(replies) => replies,
            Err(error) => {
                let error = Error::from(error);
                self.suspect_pause(&error, key);
                return Err(error);
            }
        };
        let (Some(versions), Some(looked_up)) = (replies.pop(), replies.pop()) else {
            return Err(unexpected(
                "a pipeline of two commands answered fewer replies",
            ));
        };
        let fetched = match looked_up {
            Value::Nil => read(None),
            Value::BulkString(value) => read(Some(value)),
            Value::ServerError(error) => match Error::from(RedisError::from(error)) {
                error if self.scripted_after(&error) => {
                    Box::pin(self.fetch(key, Some((lease, lease_ttl)), false)).await?
                }
                error if error.is_refused_write() => read(Box::pin(self.get(key)).await?),
                error => return Err(error),
            },
            _ => return Err(unexpected("SET .. GET answered neither a string nor nil")),
        };
        let read = match versions {
            Value::Array(read) => read,
            Value::ServerError(error) => return Err(RedisError::from(error).into()),
            _ => return Err(unexpected("MGET answered no array")),
        };
        let read = read.into_iter().map(|version| match version {
            Value::BulkString(version) => Some(version),
            _ => None,
        });
        Ok((fetched, self.versions(tags, read, ttl).await?))
    }

    /// A lookup while writes may be paused (`mode` has [`SUSPECT`] or [`PAUSED`]): a `GET` on
    /// the reads' connection (see [`reads_while_paused`](Self::reads_while_paused)), or, once
    /// the write probe was answered, a lookup as usual.
    async fn lookup_paused(
        &self,
        key: &str,
        (lease, lease_ttl): (&Lease, Duration),
        want_ttl: bool,
        mode: u8,
    ) -> Result<Fetch, Error> {
        if !self.reads_while_paused(mode, key) {
            return self.lookup(key, lease, lease_ttl, want_ttl).await;
        }
        let read = self.paused.get(key).await;
        self.read_while_suspect(mode, read.is_ok(), key);
        read.map(read_paused)
    }

    /// Whether a lookup (of `key`, or of a batch's keys with `key` first) made in `mode`
    /// reads on the reads' connection instead of taking leases: while a pause is suspected,
    /// to see whether Redis still serves reads; while writes are paused, until the write
    /// probe (sent to `key`'s server unless one is waiting) was answered.
    fn reads_while_paused(&self, mode: u8, key: &str) -> bool {
        if mode & PAUSED == 0 {
            return mode & SUSPECT != 0;
        }
        if self.paused.probe.answered.swap(false, Ordering::AcqRel) {
            self.lookup_mode.fetch_and(!PAUSED, Ordering::Relaxed);
            tracing::info!(
                store = self.kind(),
                "writes answer again: lookups take leases again"
            );
            return false;
        }
        self.paused.probe(&self.connection, key);
        true
    }

    /// After a read made in `mode` while a pause was suspected: Redis `answered` it, so
    /// writes are paused, and lookups read until the write probe sent now is answered.
    fn read_while_suspect(&self, mode: u8, answered: bool, key: &str) {
        if mode & PAUSED != 0 {
            return;
        }
        let before = self.lookup_mode.fetch_and(!SUSPECT, Ordering::Relaxed);
        if answered && before & (SUSPECT | PAUSED) == SUSPECT {
            self.paused.probe.answered.store(false, Ordering::Release);
            self.lookup_mode.fetch_or(PAUSED, Ordering::Relaxed);
            self.paused.probe(&self.connection, key);
            tracing::warn!(
                store = self.kind(),
                "a lookup timed out while Redis serves reads (writes paused?): lookups read, \
                 and a miss is not stored, until writes answer again"
            );
        }
    }

    /// `SET .. EX` for whole seconds, `SET .. PX` otherwise (short leases).
    pub(crate) async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Error> {
        self.check_len(value).await?;
        let mut cmd = Cmd::with_capacity(5, key.len() + value.len() + 24);
        cmd.arg("SET").arg(key).arg(value);
        if ttl.subsec_nanos() == 0 {
            cmd.arg("EX").arg(ttl.as_secs().max(1));
        } else {
            cmd.arg("PX").arg(millis(ttl));
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
        self.check_len(value).await?;
        let filled: i64 = self
            .invoke(
                FILL.key(key)
                    .arg(lease.as_bytes())
                    .arg(value)
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(filled == 1)
    }

    /// Writes `claim` at byte `at + CLAIM_AT` of `key` if the envelope at `at` is fresh until
    /// `fresh_until` and unclaimed at `now`; says whether it did.
    pub(crate) async fn claim(
        &self,
        key: &str,
        at: usize,
        fresh_until: u64,
        now: u64,
        claim: &[u8],
    ) -> Result<bool, Error> {
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(key)
            .arg(at)
            .arg(freshness::fresh_until_field(fresh_until))
            .arg(now)
            .arg(claim);
        let claimed: i64 = self.invoke(&invocation).await?;
        Ok(claimed == 1)
    }

    /// Puts `lease` on `key` for `lease_ttl` if it still holds the envelope at byte `at`,
    /// fresh until `fresh_until`; says whether it did.
    pub(crate) async fn take_over(
        &self,
        key: &str,
        at: usize,
        fresh_until: u64,
        lease: &Lease,
        lease_ttl: Duration,
    ) -> Result<bool, Error> {
        let mut invocation = TAKE_OVER.prepare_invoke();
        invocation
            .key(key)
            .arg(at)
            .arg(freshness::fresh_until_field(fresh_until))
            .arg(lease.as_bytes())
            .arg(millis(lease_ttl));
        let taken: i64 = self.invoke(&invocation).await?;
        Ok(taken == 1)
    }

    /// Stores `value` (deletes the entry for `None`) if `lease`'s claim is still at byte
    /// `at` of `key`; says whether it did.
    pub(crate) async fn replace_claimed(
        &self,
        key: &str,
        at: usize,
        lease: &Lease,
        value: Option<&[u8]>,
        ttl: Duration,
    ) -> Result<bool, Error> {
        if let Some(value) = value {
            self.check_len(value).await?;
        }
        let mut invocation = REPLACE_CLAIMED.prepare_invoke();
        invocation
            .key(key)
            .arg(at)
            .arg(lease.as_bytes())
            .arg(value.unwrap_or_default())
            .arg(millis(ttl));
        let replaced: i64 = self.invoke(&invocation).await?;
        Ok(replaced == 1)
    }

    pub(crate) async fn release(&self, key: &str, lease: &Lease) -> Result<(), Error> {
        self.invoke(RELEASE.key(key).arg(lease.as_bytes())).await
    }

    /// `UNLINK` of keys on one server (on a cluster, in one slot); with a `tombstone` (its
    /// bytes and lifetime), `SET key tombstone PX lifetime` of those that are no tag keys
    /// instead, in the same pipeline. With replicated invalidation, on its own connection
    /// and followed by `WAIT`: fails unless as many replicas as asked for acknowledged it.
    /// Strictly so: a replica that is paused, cut off or down may be the one a failover
    /// promotes, with the old entry; and a primary left with fewer replicas (after a
    /// failover, until the old primary rejoins) cannot give the guarantee, so its invalidated
    /// keys stay misses until it can.
    pub(crate) async fn delete(
        &self,
        keys: &[String],
        tombstone: Option<(&[u8], Duration)>,
    ) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        match tombstone {
            None if self.replicated.is_none() => {
                return match self.run(redis::cmd("UNLINK").arg(keys)).await {
                    // A slot migrating on a cluster: some keys moved, and the source refuses
                    // a command on several (`TRYAGAIN`) until the migration ends. One key at
                    // a time, each is deleted where it is (the client follows `ASK`); one
                    // after another, as redis-rs 1.8 handed `ASK` back to some of several
                    // redirected commands sent at once.
                    Err(error) if keys.len() > 1 && error.is_redirect() => {
                        for key in keys {
                            let mut unlink = redis::cmd("UNLINK");
                            unlink.arg(key);
                            self.run::<()>(&unlink).await?;
                        }
                        Ok(())
                    }
                    unlinked => unlinked,
                };
            }
            None => {
                pipe.cmd("UNLINK").arg(keys).ignore();
            }
            Some((tombstone, lifetime)) => {
                let (tags, entries): (Vec<&String>, Vec<&String>) =
                    keys.iter().partition(|key| is_tag_key(key));
                if !tags.is_empty() {
                    pipe.cmd("UNLINK").arg(tags).ignore();
                }
                for key in entries {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(tombstone)
                        .arg("PX")
                        .arg(millis(lifetime))
                        .ignore();
                }
            }
        }
        let Some(replicated) = &self.replicated else {
            let mut connection = self.connection.clone();
            return Ok(pipe.query_async::<()>(&mut connection).await?);
        };
        pipe.cmd("WAIT")
            .arg(replicated.replicas)
            .arg(u64::try_from(replicated.timeout.as_millis()).unwrap_or(u64::MAX));
        let mut connection = replicated.connection.clone();
        let (acknowledged,): (usize,) = pipe.query_async(&mut connection).await?;
        if acknowledged < replicated.replicas {
            return Err(Error::NotReplicated {
                acknowledged,
                wanted: replicated.replicas,
            });
        }
        Ok(())
    }

    /// The versions of `tags` (see `tags.rs`), creating absent tag keys with fresh versions
    /// to live `ttl`. A plain `MGET` (one `GET` per tag on a cluster, at once) reads them; only
    /// when one is absent (after an invalidation or an eviction) does a script create it.
    pub(crate) async fn read_tags(&self, tags: &[String], ttl: Duration) -> Result<Vec<u8>, Error> {
        let read: Vec<Option<Vec<u8>>> = if self.is_cluster() {
            let gets = tags.iter().map(|tag| self.get(tag));
            join_all(gets).await.into_iter().collect::<Result<_, _>>()?
        } else {
            self.run(redis::cmd("MGET").arg(tags)).await?
        };
        self.versions(tags, read, ttl).await
    }

    /// The versions of `tags` from their plain read `read`, creating the absent ones.
    async fn versions(
        &self,
        tags: &[String],
        read: impl IntoIterator<Item = Option<Vec<u8>>>,
        ttl: Duration,
    ) -> Result<Vec<u8>, Error> {
        let mut versions = Vec::new();
        for (i, (tag, version)) in tags.iter().zip(read).enumerate() {
            let version = match version {
                Some(version) if version.len() == VERSION_LEN => version,
                // Absent (or not a version): create it, or read the one a racing lookup
                // created.
                // Boxed: this future is part of every tagged lookup's.
                _ => Box::pin(self.create_tag(tag, ttl)).await?,
            };
            if i == 0 {
                // The first version's buffer holds them all: one tag allocates nothing more.
                versions = version;
                versions.reserve_exact((tags.len() - 1) * VERSION_LEN);
            } else {
                versions.extend_from_slice(&version);
            }
        }
        Ok(versions)
    }

    /// The version of `tag`, created to live `ttl` if it is still absent (see [`READ_TAGS`]).
    async fn create_tag(&self, tag: &str, ttl: Duration) -> Result<Vec<u8>, Error> {
        let mut invocation = READ_TAGS.prepare_invoke();
        invocation
            .key(tag)
            .arg(&fresh_version()[..])
            .arg(millis(ttl));
        self.invoke(&invocation).await
    }

    /// Makes `tags` live at least `ttl` more, so that they outlive the entry just stored.
    pub(crate) async fn extend_tags(&self, tags: &[String], ttl: Duration) -> Result<(), Error> {
        let ttl = millis(ttl);
        let groups: Vec<&[String]> = if self.is_cluster() {
            tags.chunks(1).collect()
        } else {
            vec![tags]
        };
        let extensions = groups.into_iter().map(|group| async move {
            let mut invocation = EXTEND_TAGS.prepare_invoke();
            invocation.arg(ttl);
            for tag in group {
                invocation.key(tag);
            }
            self.invoke::<()>(&invocation).await
        });
        join_all(extensions).await.into_iter().collect()
    }

    /// The near tier's probe: `key` written and deleted in one script (see [`PROBE`]).
    pub(crate) async fn probe(&self, key: &str) -> Result<(), Error> {
        self.invoke::<i64>(&PROBE.key(key)).await.map(drop)
    }

    /// What `key` holds, as [`PEEK`] reads it (routed by the key's slot on a cluster).
    pub(crate) async fn peek(&self, key: &str) -> Result<Peeked, Error> {
        let mut invocation = PEEK.prepare_invoke();
        invocation.key(key);
        let (kind, ttl, bytes): (String, i64, Vec<u8>) = self.invoke(&invocation).await?;
        let ttl = u64::try_from(ttl).ok().map(Duration::from_millis);
        Ok(match kind.as_str() {
            "none" => Peeked::Absent,
            "string" => Peeked::Bytes(Bytes::Owned(bytes), ttl),
            _ => Peeked::Other(kind, ttl),
        })
    }

    /// The run id of the server (`INFO server`); on a cluster, of every primary. Fails
    /// when one does not answer.
    pub(crate) async fn run_ids(&self) -> Result<BTreeSet<String>, Error> {
        let info = redis::cmd("INFO").arg("server").clone();
        let reply: Value = match &self.connection {
            Connection::Cluster(cluster) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                cluster.clone().route_command(info, routing).await?
            }
            // On the reads' connection: the main one may be queued behind paused writes.
            _ => {
                let mut reads = self.paused.reads.clone();
                info.query_async(&mut reads).await?
            }
        };
        let mut ids = BTreeSet::new();
        collect_run_ids(&reply, &mut ids);
        Ok(ids)
    }

    /// `PING`; on a cluster, every primary.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        if let Connection::Cluster(cluster) = &self.connection {
            let routing = RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::AllSucceeded),
            ));
            let mut cluster = cluster.clone();
            cluster.route_command(redis::cmd("PING"), routing).await?;
            return Ok(());
        }
        self.run(&redis::cmd("PING")).await
    }
}
