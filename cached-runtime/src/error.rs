//! The error type of cache construction and of the few fallible public operations.
//!
//! Cached calls never return these: a failing cache only makes a call slower.

/// An error from connecting to or talking to the cache backend.
///
/// Messages never contain passwords: URLs are shown with their password replaced.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let err = redis_cached::Cache::connect("ftp://example").await.unwrap_err();
/// assert!(err.to_string().contains("unsupported URL scheme"));
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL could not be parsed, or names a scheme this build does not support.
    #[error("invalid cache URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL with any password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A builder setting is out of range.
    #[error("invalid cache configuration: {0}")]
    InvalidConfig(String),
    /// Redis answered with an error, or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// [`CacheBuilder::build`](crate::CacheBuilder::build) could not connect (refused,
    /// unreachable, refused credentials, TLS): the address tried and why.
    #[error("could not connect to the cache at `{address}`: {reason}")]
    Connect {
        /// The URL tried, with any password redacted.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// Recent operations failed to reach Redis, so this one was not tried (the circuit
    /// breaker is open; it tries again shortly).
    #[error("cache unavailable: recent operations failed to reach it")]
    Unavailable,
    /// With [`replicated_invalidation`](crate::CacheBuilder::replicated_invalidation): the
    /// primary deleted the keys, but fewer replicas than asked for confirmed it in time, so a
    /// failover could bring the entries back. The keys stay invalidated in this process and
    /// are deleted again until enough replicas confirm.
    #[error("invalidation acknowledged by {acknowledged} of {wanted} replicas")]
    NotReplicated {
        /// Replicas that confirmed the deletion.
        acknowledged: usize,
        /// Replicas asked for.
        wanted: usize,
    },
    /// [`Cache::clear_function`](crate::Cache::clear_function): no `#[redis_cached]` function
    /// linked into this program has this path, or a path ending in `::` and this name.
    #[error("no #[redis_cached] function is named `{name}`{}", closest_hint(.closest))]
    UnknownFunction {
        /// The name asked for.
        name: String,
        /// The paths of the registered functions whose names are close to it (at most
        /// three, within a third of its length in edits, case aside), closest first.
        closest: Vec<String>,
    },
    /// [`Cache::clear_function`](crate::Cache::clear_function): the name ends several
    /// functions' paths; give more of the path.
    #[error(
        "`{name}` names several #[redis_cached] functions, give more of the path: {}",
        .candidates.join(", ")
    )]
    AmbiguousFunction {
        /// The name asked for.
        name: String,
        /// The full paths it ends, sorted.
        candidates: Vec<String>,
    },
    /// The operation did not finish within the cache's timeout.
    #[error("cache operation timed out after {0:?}")]
    Timeout(std::time::Duration),
}

fn closest_hint(closest: &[String]) -> String {
    match closest {
        [] => {
            " (and none has a name close to it: `redis_cached::functions()` lists them)".to_owned()
        }
        closest => format!(" (closest: {})", closest.join(", ")),
    }
}

impl Error {
    /// Whether a Cluster redirected the operation (`MOVED`, `ASK`, `TRYAGAIN`): its slot is
    /// moving or moved, which says nothing of the server's health.
    pub(crate) fn is_redirect(&self) -> bool {
        matches!(self, Error::Redis(error) if matches!(error.code(), Some("MOVED" | "ASK" | "TRYAGAIN")))
    }

    /// Whether the operation ran out of time: the cache's timeout, or redis-rs's own.
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Redis(error) => error.is_timeout(),
            _ => false,
        }
    }

    /// Whether Redis is up but refused a write (`OOM` under `noeviction`, `READONLY` on a
    /// replica, `NOREPLICAS`, `MISCONF`): reads still work. Inside a script (the lookup on
    /// servers before 7.0) the refusal comes wrapped in an `ERR Error running script ...`
    /// whose text carries the code (`... -OOM command not allowed ...`).
    pub(crate) fn is_refused_write(&self) -> bool {
        const REFUSALS: [&str; 4] = ["OOM", "READONLY", "NOREPLICAS", "MISCONF"];
        let Error::Redis(error) = self else {
            return false;
        };
        match error.code() {
            Some(code) if REFUSALS.contains(&code) => true,
            Some("ERR") => error.detail().is_some_and(|detail| {
                detail.contains("Error running script")
                    && REFUSALS
                        .iter()
                        .any(|code| detail.contains(&format!("-{code} ")))
            }),
            _ => false,
        }
    }
}
