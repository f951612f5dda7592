//! The target of the whole-server load test (`scripts/bench-server`, see `BENCHMARKS.md`):
//! one axum server, one tokio runtime, serving the same JSON document six ways side by side,
//! so that a real HTTP load generator can compare what the cache costs with what it replaces.
//!
//! | route            | what answers                                                        |
//! |------------------|---------------------------------------------------------------------|
//! | `/cached/{id}`   | (a) `#[redis_cached]` on a `Cache` without a near tier (defaults: fill leases on) |
//! | `/plain/{id}`    | (a') the same function on a cache built `.without_fill_leases()`     |
//! | `/near/{id}`     | (b) the same read with `near_cache = true` on a cache with `.near_cache(..)`, returning `Arc<Profile>` |
//! | `/manual/{id}`   | (c) hand-written redis-rs: `GET` + serde_json decode; on a miss the query and `SET .. EX` |
//! | `/memory/{id}`   | (d) the document from an in-process map: no cache, no database       |
//! | `/db/{id}`       | (e) the uncached path: two SQLite queries through sqlx, no added latency |
//! | `/cached_crate/{id}` | (f) the `cached` crate: `#[concurrent_cached]` over its `AsyncRedisCache` (on a `ConnectionManager`), same Redis |
//!
//! Started with `--prometheus`, the server installs a Prometheus recorder process-wide first,
//! as the example server does (`/metrics` renders it): the load test's (g) is (a) on such a
//! second server.
//!
//! `?size=100|1024|102400` picks the document: a profile with its project history, padded
//! so that its JSON is exactly that many bytes (default 1024). Every route answers with
//! axum's `Json` over the same struct, so the serialisation is the same everywhere and the
//! only difference is where the value comes from. (a), (a'), (b), (c) and (g) read the same
//! Redis keys, `profile:<size>:<id>`; (f) reads its own (`cached` stores MessagePack).
//!
//! At start-up the server (re)creates the SQLite database, fills it, warms every key through
//! every cache (and checks that each path returns the document it generated), waits until
//! the near tier's tracking connection is up, and only then listens and prints
//! `listening on http://ADDR`.
//!
//! ```sh
//! scripts/bench-server                     # the whole load test: installs wrk, starts Redis
//! cargo run --release -p redis-cached-tools --bin bench_server -- --redis-url redis://127.0.0.1:6379 \
//!     --bind 127.0.0.1:8080 --database /tmp/bench.sqlite3 --ids 100 --sizes 100,1024,102400
//! ```

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use cached::AsyncRedisCache;
use cached::macros::concurrent_cached;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis_cached::{Cache, NearCache, redis_cached};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Time to live of every entry, (a) to (c) alike: longer than any run.
const TTL_SECS: u64 = 86_400;

/// The settings every Redis client here uses, the library's defaults: 250 ms bounds.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------
// The document.

/// A profile with its project history: the value every route returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Profile {
    id: i64,
    name: String,
    team: String,
    projects: Vec<Project>,
    /// Free text, padded so that the JSON has exactly the requested size.
    note: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Project {
    code: String,
    name: String,
    role: String,
    hours: u32,
    started: String,
}

const NAMES: [&str; 8] = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Leslie Lamport",
];
const TEAMS: [&str; 4] = ["Compilers", "Storage", "Networking", "Payments"];
const PROJECTS: [&str; 6] = [
    "Ledger migration",
    "Search relevance",
    "Checkout redesign",
    "Edge caching",
    "Billing exports",
    "Fraud scoring",
];
const ROLES: [&str; 4] = ["owner", "reviewer", "contributor", "advisor"];
const FILLER: &str = "Prefers written design reviews, pairs on on-call handovers, mentors new \
                      hires in the team and keeps the runbooks current. ";

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |bytes| bytes.len())
}

/// The document `id` of `size` bytes of JSON (at least about 80 bytes: a smaller size gives
/// the bare profile). As many projects as fit, then the note pads to the exact size.
fn document(size: usize, id: i64) -> Profile {
    let n = usize::try_from(id).unwrap_or(0);
    let mut profile = Profile {
        id,
        name: NAMES[n % NAMES.len()].to_owned(),
        team: TEAMS[n % TEAMS.len()].to_owned(),
        projects: Vec::new(),
        note: String::new(),
    };
    // Lengths add up: each project after the first also costs a comma. Keep 40 bytes
    // for the note.
    let mut len = json_len(&profile);
    loop {
        let seq = profile.projects.len();
        let project = Project {
            code: format!("PRJ-{id:04}-{seq:04}"),
            name: PROJECTS[(n + seq) % PROJECTS.len()].to_owned(),
            role: ROLES[(n * 7 + seq) % ROLES.len()].to_owned(),
            hours: u32::try_from((n * 37 + seq * 11) % 1_900 + 20).unwrap_or(0),
            started: format!(
                "20{:02}-{:02}-{:02}",
                15 + seq % 10,
                1 + seq % 12,
                1 + seq % 28
            ),
        };
        let added = json_len(&project) + usize::from(seq > 0);
        if len + added + 40 > size {
            break;
        }
        len += added;
        profile.projects.push(project);
    }
    profile.note = FILLER
        .chars()
        .cycle()
        .take(size.saturating_sub(len))
        .collect();
    profile
}

/// Serialises a shared document where it lies (for `/memory`: no clone, no decode).
struct Shared(Arc<Profile>);

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

// ---------------------------------------------------------------------------------------
// The database: the uncached path, and what the caches fill from.

#[derive(Clone, Debug)]
struct Db {
    pool: SqlitePool,
}

impl Db {
    /// A fresh database in `path` (whatever was there is dropped), holding `documents`.
    async fn create(path: &str, documents: &[(usize, Arc<Profile>)]) -> Result<Db, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS projects;
             DROP TABLE IF EXISTS profiles;
             CREATE TABLE profiles (
                 size INTEGER NOT NULL, id INTEGER NOT NULL,
                 name TEXT NOT NULL, team TEXT NOT NULL, note TEXT NOT NULL,
                 PRIMARY KEY (size, id));
             CREATE TABLE projects (
                 size INTEGER NOT NULL, profile_id INTEGER NOT NULL, seq INTEGER NOT NULL,
                 code TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
                 hours INTEGER NOT NULL, started TEXT NOT NULL,
                 PRIMARY KEY (size, profile_id, seq));",
        )
        .execute(&pool)
        .await?;
        let mut tx = pool.begin().await?;
        for (size, profile) in documents {
            let size = i64::try_from(*size).unwrap_or(i64::MAX);
            sqlx::query("INSERT INTO profiles (size, id, name, team, note) VALUES (?, ?, ?, ?, ?)")
                .bind(size)
                .bind(profile.id)
                .bind(&profile.name)
                .bind(&profile.team)
                .bind(&profile.note)
                .execute(&mut *tx)
                .await?;
            for (seq, project) in profile.projects.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO projects (size, profile_id, seq, code, name, role, hours, started) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(size)
                .bind(profile.id)
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(&project.code)
                .bind(&project.name)
                .bind(&project.role)
                .bind(project.hours)
                .bind(&project.started)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Db { pool })
    }

    /// Document `id` of `size` bytes: the profile's row and its projects, in order.
    async fn profile(&self, size: usize, id: i64) -> Result<Option<Profile>, sqlx::Error> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT name, team, note FROM profiles WHERE size = ? AND id = ?")
                .bind(size)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((name, team, note)) = row else {
            return Ok(None);
        };
        let projects: Vec<(String, String, String, u32, String)> = sqlx::query_as(
            "SELECT code, name, role, hours, started FROM projects \
             WHERE size = ? AND profile_id = ? ORDER BY seq",
        )
        .bind(size)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Profile {
            id,
            name,
            team,
            projects: projects
                .into_iter()
                .map(|(code, name, role, hours, started)| Project {
                    code,
                    name,
                    role,
                    hours,
                    started,
                })
                .collect(),
            note,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// The cached read, the hand-written one, and the handlers.

/// (a), (a') and (b): one function; which cache it is given decides leases and near tier.
#[redis_cached(key = "profile:<size>:<id>", ttl = 86400, cache = cache)]
async fn profile(
    cache: &Cache,
    db: &Db,
    size: usize,
    id: i64,
) -> Result<Option<Profile>, sqlx::Error> {
    db.profile(size, id).await
}

/// (b): the same read on the cache with a near tier, held there decoded
/// (`near_cache = true`): a near hit clones an `Arc` instead of decoding JSON.
#[redis_cached(key = "profile:<size>:<id>", ttl = 86400, cache = cache, near_cache = true)]
async fn near_profile(
    cache: &Cache,
    db: &Db,
    size: usize,
    id: i64,
) -> Result<Option<Arc<Profile>>, sqlx::Error> {
    Ok(db.profile(size, id).await?.map(Arc::new))
}

/// (c): the cache-aside a handler would contain without the library.
async fn profile_by_hand(
    redis: &ConnectionManager,
    db: &Db,
    size: usize,
    id: i64,
) -> Result<Option<Profile>, sqlx::Error> {
    // Keys of its own: plain JSON, which the library's entries (ending in a trailer) are not.
    let key = format!("hand:profile:{size}:{id}");
    let mut redis = redis.clone();
    let cached: redis::RedisResult<Option<Vec<u8>>> =
        redis::cmd("GET").arg(&key).query_async(&mut redis).await;
    if let Ok(Some(bytes)) = cached
        && let Ok(profile) = serde_json::from_slice(&bytes)
    {
        return Ok(Some(profile));
    }
    let profile = db.profile(size, id).await?;
    if let Some(profile) = &profile
        && let Ok(bytes) = serde_json::to_vec(profile)
    {
        let _: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&key)
            .arg(bytes)
            .arg("EX")
            .arg(TTL_SECS)
            .query_async(&mut redis)
            .await;
    }
    Ok(profile)
}

/// (f): the same read through the `cached` crate, as its documentation writes it: the key
/// from the arguments (`convert`), the store built once on first use (`create`), values in
/// its own format (MessagePack) under its own keys, on a `ConnectionManager`.
#[concurrent_cached(
    map_error = r##"|error| sqlx::Error::Protocol(format!("cached: {error:?}"))"##,
    ty = "cached::AsyncRedisCache<String, Option<Profile>>",
    key = "String",
    convert = r##"{ format!("{size}:{id}") }"##,
    create = r##"{
        AsyncRedisCache::builder("profile:")
            .ttl(Duration::from_secs(TTL_SECS))
            .connection_string(CACHED_CRATE_URL.get().expect("set before the first call"))
            .connection_manager(true)
            .build()
            .await
            .expect("the cached crate's store connects")
    }"##
)]
async fn profile_cached_crate(
    db: &Db,
    size: usize,
    id: i64,
) -> Result<Option<Profile>, sqlx::Error> {
    db.profile(size, id).await
}

/// The Redis URL of (f)'s store, which its `create` block reads.
static CACHED_CRATE_URL: OnceLock<String> = OnceLock::new();

/// With `--prometheus`: a Prometheus recorder installed process-wide, set up as the example
/// server's (histograms with buckets, upkeep every 5 s), before any cache is built. The load
/// test starts a second server so, and sends (g)'s requests to its `/cached/{id}`.
fn install_prometheus() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ],
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

#[derive(Clone)]
struct App {
    db: Db,
    cached: Cache,
    plain: Cache,
    near: Cache,
    manual: ConnectionManager,
    memory: Arc<HashMap<(usize, i64), Arc<Profile>>>,
    /// With `--prometheus`.
    metrics: Option<PrometheusHandle>,
}

#[derive(Deserialize)]
struct Params {
    size: Option<usize>,
}

impl Params {
    fn size(&self) -> usize {
        self.size.unwrap_or(1024)
    }
}

type Answer<T = Profile> = Result<Json<T>, StatusCode>;

fn answer<T>(result: Result<Option<T>, sqlx::Error>) -> Answer<T> {
    match result {
        Ok(Some(profile)) => Ok(Json(profile)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(error) => {
            tracing::error!(%error, "database call failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

async fn cached(State(app): State<App>, Path(id): Path<i64>, Query(q): Query<Params>) -> Answer {
    answer(profile(&app.cached, &app.db, q.size(), id).await)
}

async fn plain(State(app): State<App>, Path(id): Path<i64>, Query(q): Query<Params>) -> Answer {
    answer(profile(&app.plain, &app.db, q.size(), id).await)
}

async fn near(
    State(app): State<App>,
    Path(id): Path<i64>,
    Query(q): Query<Params>,
) -> Answer<Shared> {
    let profile = near_profile(&app.near, &app.db, q.size(), id).await;
    answer(profile.map(|found| found.map(Shared)))
}

async fn manual(State(app): State<App>, Path(id): Path<i64>, Query(q): Query<Params>) -> Answer {
    answer(profile_by_hand(&app.manual, &app.db, q.size(), id).await)
}

async fn memory(
    State(app): State<App>,
    Path(id): Path<i64>,
    Query(q): Query<Params>,
) -> Answer<Shared> {
    match app.memory.get(&(q.size(), id)) {
        Some(profile) => Ok(Json(Shared(profile.clone()))),
        None => Err(StatusCode::NOT_FOUND),
    }
}

async fn cached_crate(
    State(app): State<App>,
    Path(id): Path<i64>,
    Query(q): Query<Params>,
) -> Answer {
    answer(profile_cached_crate(&app.db, q.size(), id).await)
}

async fn db(State(app): State<App>, Path(id): Path<i64>, Query(q): Query<Params>) -> Answer {
    answer(app.db.profile(q.size(), id).await)
}

fn router(app: App) -> Router {
    Router::new()
        .route("/cached/{id}", get(cached))
        .route("/plain/{id}", get(plain))
        .route("/near/{id}", get(near))
        .route("/manual/{id}", get(manual))
        .route("/memory/{id}", get(memory))
        .route("/db/{id}", get(db))
        .route("/cached_crate/{id}", get(cached_crate))
        .route(
            "/metrics",
            get(|State(app): State<App>| async move {
                app.metrics
                    .as_ref()
                    .map(PrometheusHandle::render)
                    .unwrap_or_default()
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------
// Start-up.

struct Config {
    redis_url: String,
    bind: String,
    database: String,
    ids: i64,
    sizes: Vec<usize>,
    prometheus: bool,
}

const USAGE: &str = "usage: bench_server [--redis-url URL] [--bind ADDR] [--database PATH] \
                     [--ids N] [--sizes 100,1024,102400] [--prometheus]";

impl Config {
    fn from_args() -> Result<Config, String> {
        let mut config = Config {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            bind: "127.0.0.1:8080".to_owned(),
            database: std::env::temp_dir()
                .join("redis-cached-bench.sqlite3")
                .display()
                .to_string(),
            ids: 100,
            sizes: vec![100, 1024, 102_400],
            prometheus: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--redis-url" => config.redis_url = value()?,
                "--bind" => config.bind = value()?,
                "--database" => config.database = value()?,
                "--ids" => {
                    config.ids = value()?
                        .parse()
                        .ok()
                        .filter(|ids| *ids >= 1)
                        .ok_or("--ids takes a positive number")?;
                }
                "--prometheus" => config.prometheus = true,
                "--sizes" => {
                    config.sizes = value()?
                        .split(',')
                        .map(|size| size.trim().parse::<usize>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| "--sizes takes sizes in bytes, such as 100,1024")?;
                }
                _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
            }
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench_server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_args()?;
    let started = Instant::now();

    let mut documents = Vec::new();
    for &size in &config.sizes {
        for id in 1..=config.ids {
            let profile = document(size, id);
            let len = json_len(&profile);
            if len != size {
                return Err(format!(
                    "document {id} of {size} B comes out as {len} B of JSON: sizes start at 100"
                ));
            }
            documents.push((size, Arc::new(profile)));
        }
        println!(
            "document of {size} B: {} projects",
            document(size, 1).projects.len()
        );
    }
    let db = Db::create(&config.database, &documents)
        .await
        .map_err(|error| format!("cannot create the database {}: {error}", config.database))?;

    let connect = |builder: redis_cached::CacheBuilder| async {
        builder
            .timeout(REDIS_TIMEOUT)
            .build()
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", config.redis_url))
    };
    let cached = connect(Cache::builder(&config.redis_url)).await?;
    let plain = connect(Cache::builder(&config.redis_url).without_fill_leases()).await?;
    let near =
        connect(Cache::builder(&config.redis_url).near_cache(NearCache::new(256 << 20))).await?;
    CACHED_CRATE_URL
        .set(config.redis_url.clone())
        .map_err(|_| "the URL is set once")?;
    // Before the caches are built: building one describes the metrics to the recorder.
    let metrics = config.prometheus.then(install_prometheus).transpose()?;
    let client = redis::Client::open(config.redis_url.as_str()).map_err(|e| e.to_string())?;
    let manual = ConnectionManager::new_with_config(
        client.clone(),
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_max_delay(Duration::from_secs(2)),
    )
    .await
    .map_err(|error| format!("cannot connect to {}: {error}", config.redis_url))?;
    let app = App {
        db,
        cached,
        plain,
        near,
        manual,
        memory: Arc::new(
            documents
                .iter()
                .map(|(size, profile)| ((*size, profile.id), profile.clone()))
                .collect(),
        ),
        metrics,
    };

    warm(&app, &client, &documents).await?;
    println!(
        "warmed {} keys through every path in {:.1} s",
        documents.len(),
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.bind))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    println!("listening on http://{address}");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|error| format!("server error: {error}"))
}

/// Fills Redis from the database (a miss through the library), then reads every key back
/// through every path and checks it is the generated document; waits for the near tier's
/// tracking and reads every key through it once more, so that its first requests are hits.
async fn warm(
    app: &App,
    client: &redis::Client,
    documents: &[(usize, Arc<Profile>)],
) -> Result<(), String> {
    let check = |path: &str, got: Result<Option<Profile>, sqlx::Error>, want: &Profile| match got {
        Ok(Some(got)) if got == *want => Ok(()),
        Ok(Some(_)) => Err(format!("{path} returned another document than generated")),
        Ok(None) => Err(format!("{path} found no document")),
        Err(error) => Err(format!("{path} failed: {error}")),
    };
    for (size, want) in documents {
        let (size, id) = (*size, want.id);
        check("db", app.db.profile(size, id).await, want)?;
        check(
            "cached",
            profile(&app.cached, &app.db, size, id).await,
            want,
        )?;
    }
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|error| error.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .map_err(|error| error.to_string())?;
        let tracking = clients.lines().any(|line| {
            line.split(' ').any(|field| {
                field
                    .strip_prefix("flags=")
                    .is_some_and(|f| f.contains('t'))
            })
        });
        if tracking {
            break;
        }
        if Instant::now() > deadline {
            return Err("the near cache's tracking connection did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The tier goes live just after Redis acknowledges tracking.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (size, want) in documents {
        let (size, id) = (*size, want.id);
        check("plain", profile(&app.plain, &app.db, size, id).await, want)?;
        let near = near_profile(&app.near, &app.db, size, id).await;
        check(
            "near",
            near.map(|found| found.map(Arc::unwrap_or_clone)),
            want,
        )?;
        check(
            "manual",
            profile_by_hand(&app.manual, &app.db, size, id).await,
            want,
        )?;
        // (f) fills its own keys here (a miss), and the check reads them back.
        for _ in 0..2 {
            check(
                "cached_crate",
                profile_cached_crate(&app.db, size, id).await,
                want,
            )?;
        }
    }
    let keys: usize = redis::cmd("DBSIZE")
        .query_async(&mut admin)
        .await
        .map_err(|error| error.to_string())?;
    if keys < documents.len() {
        return Err(format!(
            "Redis holds {keys} keys, expected {}",
            documents.len()
        ));
    }
    Ok(())
}
