//! The primary of a Sentinel-managed Redis, followed across failovers.
//!
//! redis-rs's `SentinelClient` resolves the primary (asking the sentinels, then checking the
//! node's `ROLE`) but hands out plain connections that stay on that address, dead or
//! demoted. So the current primary's reconnecting `ConnectionManager` sits behind an
//! `ArcSwap`, and the primary is resolved again, single-flighted and at most every
//! [`RESOLVE_EVERY`]: when a sentinel announces `+switch-master`, after a connection failure,
//! and on a `READONLY` reply (the node was demoted). A `READONLY` reply is passed on as a
//! connection failure, so that no caller falls back to reading a demoted node.

use super::breaker::is_unreachable;
use crate::Error;
use crate::task::{Backoff, spawn_detached};
use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};

/// The least time between two resolutions of the primary.
const RESOLVE_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
    /// Whether this handle sends on the primary's invalidation connection (see
    /// [`SentinelConnection::for_invalidations`]).
    invalidations: bool,
}

struct Shared {
    sentinel: Mutex<Sentinel>,
    /// `None` until a primary is resolved (a lazy cache started while none was).
    current: ArcSwapOption<Primary>,
    /// For lookups and fills, and for invalidations (whose `WAIT` takes longer).
    configs: Configs,
    /// Bounds one resolution (several sentinels and the primary's `ROLE`).
    resolve_timeout: Duration,
    /// The current primary's client, for the near tier's tracking connection.
    primaries: watch::Sender<Vec<Client>>,
}

struct Sentinel {
    client: SentinelClient,
    resolved_at: Option<Instant>,
}

struct Primary {
    client: Client,
    /// Lookups, fills and plain invalidations.
    connection: ConnectionManager,
    /// Replicated invalidations, whose `WAIT` would hold up the lookups queued behind it
    /// (opened on first use).
    invalidations: ConnectionManager,
}

/// The settings of a primary's two connections.
pub(crate) struct Configs {
    pub(crate) calls: ConnectionManagerConfig,
    pub(crate) invalidations: ConnectionManagerConfig,
}

impl Primary {
    fn new(client: Client, configs: &Configs) -> RedisResult<Primary> {
        Ok(Primary {
            connection: ConnectionManager::new_lazy_with_config(
                client.clone(),
                configs.calls.clone(),
            )?,
            invalidations: ConnectionManager::new_lazy_with_config(
                client.clone(),
                configs.invalidations.clone(),
            )?,
            client,
        })
    }
}

impl SentinelConnection {
    /// Resolves the primary through the sentinels (bounded by `timeout`, at least a second,
    /// per resolution) and follows it from then on. Unless `lazy`, fails when no primary
    /// is resolved; the error names `service` and the sentinels, as `url` (redacted) lists
    /// them.
    pub(crate) async fn open(
        client: SentinelClient,
        service: &str,
        url: &str,
        configs: Configs,
        timeout: Duration,
        lazy: bool,
    ) -> Result<SentinelConnection, Error> {
        let mut sentinel = Sentinel {
            client,
            resolved_at: None,
        };
        let resolve_timeout = timeout.max(Duration::from_secs(1));
        let primary = match resolve(&mut sentinel, resolve_timeout).await {
            Ok(client) => Some(Arc::new(Primary::new(client, &configs)?)),
            Err(_) if lazy => None,
            Err(reason) => {
                return Err(Error::Connect {
                    address: format!("primary {service} named by the sentinels of {url}"),
                    reason,
                });
            }
        };
        let clients = primary
            .iter()
            .map(|primary| primary.client.clone())
            .collect();
        let (primaries, _) = watch::channel(clients);
        let shared = Arc::new(Shared {
            sentinel: Mutex::new(sentinel),
            current: ArcSwapOption::new(primary),
            configs,
            resolve_timeout,
            primaries,
        });
        spawn_detached(follow_switches(Arc::downgrade(&shared), service.to_owned()));
        Ok(SentinelConnection {
            shared,
            invalidations: false,
        })
    }

    /// A handle on the same primary that sends on its invalidation connection.
    pub(crate) fn for_invalidations(&self) -> SentinelConnection {
        SentinelConnection {
            shared: self.shared.clone(),
            invalidations: true,
        }
    }

    /// The current primary, and each new one, for the near tier.
    pub(crate) fn primaries(&self) -> watch::Receiver<Vec<Client>> {
        self.shared.primaries.subscribe()
    }

    /// The connection to send on, or the error of having no primary yet (which starts a
    /// resolution).
    fn connection(&self) -> RedisResult<ConnectionManager> {
        match &*self.shared.current.load() {
            Some(primary) if self.invalidations => Ok(primary.invalidations.clone()),
            Some(primary) => Ok(primary.connection.clone()),
            None => self.inspect(
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no primary resolved through the sentinels yet",
                ))),
                false,
            ),
        }
    }

    /// Passes a reply on; a failure to reach the primary, or a `READONLY` reply, sends the
    /// primary to be resolved again in the background.
    fn inspect<T>(&self, result: RedisResult<T>, demoted: bool) -> RedisResult<T> {
        let failed = match &result {
            Err(error) => is_unreachable(error),
            Ok(_) => false,
        };
        if demoted || failed {
            let shared = self.shared.clone();
            spawn_detached(async move { shared.re_resolve().await });
        }
        if demoted {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "READONLY: the primary was demoted; following the failover",
            )));
        }
        result
    }
}

impl Shared {
    /// Resolves the primary again unless another resolution is running or ran just now;
    /// switches to it if it moved.
    async fn re_resolve(&self) {
        let Ok(mut sentinel) = self.sentinel.try_lock() else {
            return;
        };
        if sentinel
            .resolved_at
            .is_some_and(|at| at.elapsed() < RESOLVE_EVERY)
        {
            return;
        }
        let client = match resolve(&mut sentinel, self.resolve_timeout).await {
            Ok(client) => client,
            Err(reason) => {
                tracing::debug!(%reason, "sentinel: no primary resolved; trying again on the next failure");
                return;
            }
        };
        let current = self.current.load_full();
        let from = current
            .as_ref()
            .map(|primary| primary.client.get_connection_info().addr().to_string());
        let to = client.get_connection_info().addr().to_string();
        if from.as_ref() == Some(&to) {
            return;
        }
        let Ok(primary) = Primary::new(client.clone(), &self.configs) else {
            return;
        };
        let from = from.as_deref().unwrap_or("none");
        tracing::warn!(%from, %to, "sentinel: following the primary to its address");
        self.current.store(Some(Arc::new(primary)));
        self.primaries.send_replace(vec![client]);
    }
}

async fn resolve(sentinel: &mut Sentinel, timeout: Duration) -> Result<Client, String> {
    sentinel.resolved_at = Some(Instant::now());
    match tokio::time::timeout(timeout, sentinel.client.async_get_client()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("the sentinels named no primary within {timeout:?}")),
    }
}

/// Listens for `+switch-master` on a sentinel for as long as the connection lives, and
/// resolves the primary at once when it moves.
async fn follow_switches(shared: Weak<Shared>, service: String) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let subscribed = async {
            let client = {
                let mut sentinel = strong.sentinel.lock().await;
                tokio::time::timeout(
                    strong.resolve_timeout,
                    sentinel.client.async_get_sentinel_client(),
                )
                .await
                .map_err(|_| "no sentinel answered".to_owned())?
                .map_err(|error| error.to_string())?
            };
            let mut pubsub =
                tokio::time::timeout(strong.resolve_timeout, client.get_async_pubsub())
                    .await
                    .map_err(|_| "no sentinel answered".to_owned())?
                    .map_err(|error| error.to_string())?;
            pubsub
                .subscribe("+switch-master")
                .await
                .map_err(|error| error.to_string())?;
            Ok::<_, String>(pubsub)
        }
        .await;
        drop(strong);
        match subscribed {
            Ok(pubsub) => {
                backoff.reset();
                let mut messages = pubsub.into_on_message();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        // Now and then, whether the connection is still wanted.
                        () = tokio::time::sleep(Duration::from_secs(1)) => {
                            if shared.strong_count() == 0 { return }
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    let Some(strong) = shared.upgrade() else {
                        return;
                    };
                    // `<service> <old ip> <old port> <new ip> <new port>`
                    let payload: String = message.get_payload().unwrap_or_default();
                    if payload.split(' ').next() == Some(service.as_str()) {
                        strong.sentinel.lock().await.resolved_at = None;
                        strong.re_resolve().await;
                    }
                }
            }
            Err(reason) => {
                tracing::debug!(%reason, "sentinel: cannot listen for failovers; retrying");
            }
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

fn is_read_only(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut connection = self.connection()?;
            let result = connection.req_packed_command(cmd).await;
            let demoted = match &result {
                Err(error) => is_read_only(error),
                Ok(Value::ServerError(error)) => error.code() == "READONLY",
                Ok(_) => false,
            };
            self.inspect(result, demoted)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut connection = self.connection()?;
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            let demoted = match &result {
                Err(error) => is_read_only(error),
                Ok(values) => values
                    .iter()
                    .any(|value| matches!(value, Value::ServerError(error) if error.code() == "READONLY")),
            };
            self.inspect(result, demoted)
        })
    }

    fn get_db(&self) -> i64 {
        match &*self.shared.current.load() {
            Some(primary) => primary.connection.get_db(),
            None => 0,
        }
    }
}
