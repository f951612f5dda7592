//! Test harness: real `redis-server` processes on free ports, and caches isolated per test.
//! Why two: this is the harness every test binary declares; `support` is the helpers for test
//! bodies built on it. A helper that starts, reaches or counts a server goes here; others there.
//!
//! `shared_url()` is one server for the whole test binary, started here; only the test-only
//! `REDIS_CACHED_TEST_URL` points it at another (never `REDIS_URL`, which is the examples').
//! `RedisServer::start()` gives a test a server of its own to kill, freeze and restart.
//! Servers are stopped when their handle drops, and by a watchdog when the test process
//! exits, however it exits. `cluster::RedisCluster` (six nodes) and `sentinel::RedisSentinel`
//! (a primary, a replica, three sentinels) are made of such servers.
#![allow(dead_code)]

pub mod cluster;
pub mod sentinel;

use redis::aio::MultiplexedConnection;
use redis_cached::{Cache, CacheBuilder};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The server binary tests start: `redis-server` from `PATH`, or the one named by
/// `REDIS_CACHED_TEST_SERVER` (a path to another version's `redis-server` or `valkey-server`),
/// which every harness in this directory uses.
pub fn server_binary() -> String {
    std::env::var("REDIS_CACHED_TEST_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// A `redis-server` child process on 127.0.0.1.
pub struct RedisServer {
    port: u16,
    pid: u32,
    /// A configuration file given before the arguments (a sentinel's, which it rewrites).
    config_file: Option<String>,
    extra_args: Vec<String>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`["--maxmemory", "1mb"]`).
    pub fn start_with(args: &[&str]) -> RedisServer {
        RedisServer::start_on(free_port(), None, args)
    }

    /// Starts a server on `port` from the configuration file `config_file` (if any) and
    /// extra arguments: a cluster node, or a sentinel (`["--sentinel"]`).
    pub fn start_on(port: u16, config_file: Option<&str>, args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            pid: 0,
            config_file: config_file.map(str::to_owned),
            extra_args: args.iter().map(|arg| arg.to_string()).collect(),
            watchdog: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        // The shell starts redis-server, prints its pid, and kills it once our end of its
        // stdin closes: when this handle drops or the test process dies.
        let config_file = match &self.config_file {
            Some(path) => format!(" '{path}'"),
            None => String::new(),
        };
        let mut command = format!(
            "{}{config_file} --port {} --bind 127.0.0.1 --save '' --appendonly no \
             --daemonize no --loglevel warning",
            server_binary(),
            self.port
        );
        for arg in &self.extra_args {
            command.push_str(&format!(" '{arg}'"));
        }
        let script = format!("{command} >/dev/null 2>&1 & echo $!; read _; kill -9 $! 2>/dev/null");
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh runs; is redis-server installed? run scripts/test");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("the watchdog prints the pid");
        self.pid = line.trim().parse().expect("a pid");
        self.watchdog = Some((child, stdin));
        self.wait_until_up();
    }

    fn wait_until_up(&self) {
        wait_for_port(self.port);
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sends a signal (`"KILL"`, `"STOP"`, `"CONT"`) to the redis-server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.pid);
    }

    /// SIGKILLs the server and waits until its port is closed.
    pub fn kill(&mut self) {
        self.signal("KILL");
        self.stop_watchdog();
        wait_for_port_closed(self.port);
    }

    /// A new connection to this server.
    pub async fn connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("the test's redis-server answers")
    }

    /// `command_calls_on` a new connection to this server.
    pub async fn command_calls(&self) -> HashMap<String, u64> {
        command_calls_on(&mut self.connection().await).await
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl RedisServer {
    /// Closes the watchdog's stdin, which kills the server, and reaps the shell.
    fn stop_watchdog(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop_watchdog();
    }
}

/// What a test did to a [`Node`]'s process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// SIGSTOPped: it accepts connections (the kernel does) but answers nothing.
    Stopped,
    /// SIGKILLed: its port is closed.
    Killed,
}

/// A server of a topology (a cluster node, a sentinel's primary or replica) that a test can
/// kill, stop and continue through a shared reference, and that remembers which it did, so
/// that the harness asks only running servers about the topology.
pub struct Node {
    server: RedisServer,
    state: Mutex<NodeState>,
}

impl Node {
    pub fn new(server: RedisServer) -> Node {
        Node {
            server,
            state: Mutex::new(NodeState::Running),
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn state(&self) -> NodeState {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_running(&self) -> bool {
        self.state() == NodeState::Running
    }

    fn set_state(&self, state: NodeState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    /// SIGKILLs the server and waits until its port is closed.
    pub fn kill(&self) {
        if self.state() == NodeState::Stopped {
            // A stopped process dies of SIGKILL too; CONT first only to keep this obvious.
            self.server.signal("CONT");
        }
        self.server.signal("KILL");
        self.set_state(NodeState::Killed);
        wait_for_port_closed(self.port());
    }

    /// SIGSTOPs the server: it holds its connections and answers nothing until `cont`.
    pub fn stop(&self) {
        self.server.signal("STOP");
        self.set_state(NodeState::Stopped);
    }

    /// SIGCONTs a stopped server.
    pub fn cont(&self) {
        self.server.signal("CONT");
        self.set_state(NodeState::Running);
    }

    /// A new connection to this server.
    pub async fn connection(&self) -> MultiplexedConnection {
        self.server.connection().await
    }

    /// `command_calls_on` a new connection to this server.
    pub async fn command_calls(&self) -> HashMap<String, u64> {
        self.server.command_calls().await
    }

    /// Sends `cmd` on a new blocking connection, each step bounded (1 s to connect, 2 s for
    /// the reply): for the harness, which also runs outside a runtime (start, drop).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        query_port(self.port(), cmd)
    }
}

/// `Node::query` on 127.0.0.1:`port`.
pub fn query_port<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    connection.set_write_timeout(Some(Duration::from_secs(2)))?;
    cmd.query(&mut connection)
}

/// A directory of its own under the system's temporary directory, removed on drop: for
/// the files servers write (cluster node tables, sentinel configurations).
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/redis-cached-{what}-{pid}-{n}`, after removing those of test processes that
    /// have exited (a topology shared by a test binary is never dropped).
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            TempDir::remove_abandoned();
        }
        let path =
            std::env::temp_dir().join(format!("redis-cached-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a writable temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    fn remove_abandoned() {
        // Which processes live is read from /proc: elsewhere, leave everything.
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("redis-cached-")) else {
                continue;
            };
            // {what}-{pid}-{n}
            let mut parts = rest.rsplit('-');
            let (Some(_n), Some(Ok(pid))) = (parts.next(), parts.next().map(str::parse::<u32>))
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() && entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `ready` every 50 ms until it returns `Ok`, for at most `limit`; panics with the
/// last reason it gave. Blocking: for start-up, outside the test's own work.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match ready() {
            Ok(()) => return,
            Err(reason) if Instant::now() >= deadline => {
                panic!("gave up after {limit:?} waiting until {what}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `wait_until` for use inside a test's runtime: sleeps between polls without blocking the
/// other tasks (each poll itself blocks briefly). Returns how long it waited.
pub async fn wait_until_async(
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Duration {
    let started = Instant::now();
    loop {
        match ready() {
            Ok(()) => return started.elapsed(),
            Err(reason) if started.elapsed() >= limit => {
                panic!("gave up after {limit:?} waiting until {what}: {reason}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound once, then closed): to start a
/// server on, or to point a cache at and be refused.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port`, for at most 10 s.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server does not listen on port {port}; is it installed? run scripts/test"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more, for at most 5 s.
pub fn wait_for_port_closed(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many times the server behind `redis` has run each command (`INFO commandstats`), by
/// lowercase name; commands run inside scripts count under their own names too. What
/// counting itself sends is left out, so that counts taken before and after something
/// differ only by what that something sent, whatever the server's version: `INFO`, and
/// `HELLO` and `CLIENT ...` (`cmdstat_client|setinfo`), which a new connection may send.
pub async fn command_calls_on(redis: &mut MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|stat| stat.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| !counting_itself(name))
        .collect()
}

/// Whether `name` (as in `INFO commandstats`) is a command that counting may send.
fn counting_itself(name: &str) -> bool {
    let command = name.split('|').next().unwrap_or(name);
    matches!(command, "info" | "hello" | "client")
}

/// The URL of the server shared by this test binary: one started here, unless the test-only
/// `REDIS_CACHED_TEST_URL` names another (`REDIS_URL` is ignored: it is the examples').
pub fn shared_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("REDIS_CACHED_TEST_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => SERVER.get_or_init(RedisServer::start).url(),
    })
}

/// A prefix no other test (in this process or another) uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("test:{}:{n}:{test}:", std::process::id())
}

/// A cache builder for the shared server with a prefix of its own.
pub fn shared_builder(test: &str) -> CacheBuilder {
    Cache::builder(shared_url()).prefix(unique_prefix(test))
}

/// A cache on the shared server with a prefix of its own.
pub async fn redis_cache(test: &str) -> Cache {
    shared_builder(test)
        .build()
        .await
        .expect("the shared redis-server answers")
}

/// A plain redis-rs connection to the shared server, for looking at what the cache wrote.
pub async fn raw_connection() -> MultiplexedConnection {
    redis::Client::open(shared_url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the shared redis-server answers")
}
