//! An employee directory in front of SQLite, cached in Redis with `redis-cached`.
//!
//! ```text
//! cargo run --example server
//! curl -i localhost:8000/employees/42      # X-Cache: MISS, ~100 ms (DB_LATENCY_MS)
//! curl -i localhost:8000/employees/42      # X-Cache: HIT, ~1 ms
//! open http://localhost:8000/admin/cache   # the cache's inspection page
//! ```
//!
//! Where to look: `repo.rs` declares the caching, `main.rs` (this file) connects the cache
//! at start-up, `routes.rs` holds the handlers (with one `CacheStatusLayer` for the `X-Cache`
//! header). See `README.md` in this directory for the endpoints and configuration.
//!
//! Configuration, all from the environment:
//!
//! | variable        | default                                         |
//! |-----------------|-------------------------------------------------|
//! | `REDIS_URL`     | `redis://127.0.0.1:6379` (`mem://` when no answer) |
//! | `CACHE_PREFIX`  | none: keys are `employee:42`                    |
//! | `DATABASE_URL`  | `sqlite://<temp dir>/redis-cached-example.sqlite3` |
//! | `BIND`          | `127.0.0.1:8000`                                |
//! | `DB_LATENCY_MS` | `100`, added to every database call             |
//! | `RUST_LOG`      | `info`                                          |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | none: traces are exported by OTLP/HTTP when set (`traces.rs`) |

mod db;
mod edge;
mod extract;
mod metrics;
mod model;
mod repo;
mod routes;
pub mod traces;

use self::db::Db;
use self::repo::Repo;
use self::routes::AppState;
use metrics_exporter_prometheus::PrometheusBuilder;
use redis_cached::Cache;
use sqlx::sqlite::SqliteConnectOptions;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The server's settings, read from the environment.
struct Config {
    /// `BIND`: the address to listen on.
    bind: String,
    /// `REDIS_URL`: the cache.
    redis_url: String,
    /// `CACHE_PREFIX`: put in front of every key, to share a Redis between applications.
    cache_prefix: String,
    /// `DATABASE_URL`: the SQLite database, created when missing.
    database_url: String,
    /// `DB_LATENCY_MS`: added to every database call.
    db_latency: Duration,
}

impl Config {
    /// Reads the settings; an error names the variable that is wrong.
    fn from_env() -> Result<Config, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let default_db = std::env::temp_dir().join("redis-cached-example.sqlite3");
        let db_latency = match var("DB_LATENCY_MS") {
            None => 100,
            Some(ms) => ms
                .parse()
                .map_err(|_| format!("DB_LATENCY_MS must be whole milliseconds, not {ms:?}"))?,
        };
        Ok(Config {
            bind: var("BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned()),
            redis_url: var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
            cache_prefix: var("CACHE_PREFIX").unwrap_or_default(),
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| format!("sqlite://{}", default_db.display())),
            db_latency: Duration::from_millis(db_latency),
        })
    }
}

/// Logs to stdout (filtered by `RUST_LOG`), exports traces when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set (at `INFO`, whatever `RUST_LOG` says: each layer has a filter of its own), runs the
/// server, exits 1 on a start-up error. (Public for `tests/server.rs`, which runs it too.)
#[tokio::main]
pub async fn main() -> ExitCode {
    let otlp = traces::otlp_from_env();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let provider = otlp.as_ref().ok().and_then(Option::as_ref);
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_filter(filter);
    let traced = provider.map(|provider| traces::layer(provider).with_filter(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(logs)
        .with(traced)
        .init();
    let served = match &otlp {
        Ok(_) => run().await,
        Err(error) => Err(error.clone()),
    };
    if let Some(provider) = provider
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!("traces not all exported: {error}");
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts everything, serves until a shutdown signal, then closes the database. (Public for
/// `tests/server_traces.rs`, which runs it under a subscriber of its own.)
pub async fn run() -> Result<(), String> {
    let config = Config::from_env()?;

    // Metrics first: the runtime records through the `metrics` facade from the first call.
    // Times as histograms with buckets (see `metrics.rs`), which the dashboards need.
    let metrics = metrics::recorder()
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    let options = SqliteConnectOptions::from_str(&config.database_url).map_err(|error| {
        format!(
            "DATABASE_URL {:?} is not usable: {error}",
            config.database_url
        )
    })?;
    let db = Db::open(options, config.db_latency)
        .await
        .map_err(|error| format!("cannot open the database {}: {error}", config.database_url))?;
    tracing::info!(
        "database: {} (+{} ms per call)",
        config.database_url,
        config.db_latency.as_millis()
    );

    let (cache, cache_fallback) = connect_cache(&config).await?;
    // The cache's inspection page (functions, hit ratios, what a key holds) at /admin/cache.
    // It shows cached values: a real service mounts it behind its authentication (or on an
    // internal listener), never open to the internet as this example does.
    let inspect = redis_cached::axum::inspect(cache.clone());
    let state = AppState {
        repo: Repo::new(db.clone(), cache),
        metrics,
        cache_fallback,
    };

    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.bind))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    tracing::info!("listening on http://{address} (API docs at http://{address}/docs)");
    axum::serve(listener, routes::app(state).nest("/admin/cache", inspect))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|error| format!("server error: {error}"))?;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The cache: Redis at `REDIS_URL`, or, when it does not answer at start-up, the
/// in-process `mem://` backend (with the reason, which `/health` reports).
///
/// The fallback is for trying the example without Redis. Do not copy it into a service that
/// runs several instances: each would cache in its own memory, and a write through one
/// would leave the others' entries stale until their TTL. There, fail at start-up instead,
/// or start with `.lazy(true)` and let the runtime connect once Redis is up; either way,
/// while Redis is unreachable cached functions simply call through to the database.
async fn connect_cache(config: &Config) -> Result<(Cache, Option<Arc<str>>), String> {
    let cache = Cache::builder(&config.redis_url)
        .prefix(config.cache_prefix.as_str())
        // Each Redis operation gives up after this long and the call goes on uncached:
        // the bound on what a slow or unreachable Redis adds to a request.
        .timeout(Duration::from_millis(250))
        .build()
        .await;
    let redis_url = redacted(&config.redis_url);
    match cache {
        Ok(cache) => {
            tracing::info!("cache: {} at {redis_url}", cache.backend_kind());
            Ok((cache, None))
        }
        Err(error @ redis_cached::Error::InvalidUrl { .. })
        | Err(error @ redis_cached::Error::InvalidConfig(_)) => Err(error.to_string()),
        Err(error) => {
            let reason = format!(
                "Redis at {redis_url} did not answer at start-up ({error}); caching in process \
                 memory (mem://) instead: start Redis or set REDIS_URL, then restart"
            );
            tracing::warn!("{reason}");
            let cache = Cache::builder("mem://")
                .prefix(config.cache_prefix.as_str())
                .build()
                .await
                .map_err(|error| error.to_string())?;
            Ok((cache, Some(reason.into())))
        }
    }
}

/// `url` with its password, if any, replaced by `***`, for logs.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// Resolves on Ctrl-C or SIGTERM; the server then stops accepting connections and
/// finishes the requests in flight.
fn shutdown_signal() -> impl Future<Output = ()> {
    // SIGTERM is listened for from here on, before serving: axum polls this future in a
    // task of its own, which may first run after a request was served, and a SIGTERM
    // arriving before it listens would kill the process without a graceful stop.
    #[cfg(unix)]
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot listen for Ctrl-C: {error}");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match sigterm {
                Ok(mut sigterm) => {
                    sigterm.recv().await;
                }
                Err(error) => {
                    tracing::error!("cannot listen for SIGTERM: {error}");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
        tracing::info!("shutting down: finishing the requests in flight");
    }
}
