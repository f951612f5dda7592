//! Test harness: real `redis-server` processes on free ports, clusters, sentinels and TLS
//! certificates. Why two: this is the harness every test binary declares; `support` is the
//! helpers for test bodies built on it (caches among them). A helper that starts, reaches or
//! counts a server goes here; others there.
//!
//! `shared_url()` is one server for the whole test binary, started here; only the test-only
//! `REDIS_CACHED_TEST_URL` points it at another (never `REDIS_URL`, which is the examples').
//! `RedisServer::start()` gives a test a server of its own to kill, freeze and restart.
//! Servers are stopped when their handle drops, and by a watchdog when the test process
//! exits, however it exits. `cluster::RedisCluster` (six nodes) and `sentinel::RedisSentinel`
//! (a primary, a replica, three sentinels) are made of such servers. `netfault::NetFault`
//! delays, drops or cuts off the traffic of a server's ports (root and `iptables`).
#![allow(dead_code)]

pub mod cluster;
pub mod netfault;
pub mod sentinel;
pub mod tls;

use redis::aio::MultiplexedConnection;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The server binary tests start: `redis-server` from `PATH`, or the one named by
/// `REDIS_CACHED_TEST_SERVER` (a path to another version's `redis-server` or `valkey-server`),
/// which every harness in this directory uses.
pub fn server_binary() -> String {
    std::env::var("REDIS_CACHED_TEST_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// Whether `test` is skipped because this is one of `scripts/test`'s reruns on another
/// server version (`REDIS_CACHED_RERUN`), for a test of what does not depend on it; says so.
pub fn rerun_skips(test: &str) -> bool {
    let rerun = std::env::var_os("REDIS_CACHED_RERUN").is_some();
    if rerun {
        eprintln!(
            "SKIPPED {test}: a rerun on another server (REDIS_CACHED_RERUN); run on the first pass"
        );
    }
    rerun
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
        // A directory of its own: a replica writes the snapshot it receives there, which
        // a server started later in a shared directory (the crate's) would load at start,
        // and an older version refuses to start on a newer snapshot format.
        let dir = self.data_dir();
        std::fs::create_dir_all(&dir).expect("a temp directory for the server");
        let mut command = format!(
            "{}{config_file} --port {} --bind 127.0.0.1 --save '' --appendonly no \
             --daemonize no --loglevel warning --dir '{}'",
            server_binary(),
            self.port,
            dir.display()
        );
        for arg in &self.extra_args {
            command.push_str(&format!(" '{arg}'"));
        }
        // Its output goes to a log in its directory, quoted if it never starts listening.
        let script = format!(
            "{command} >'{}' 2>&1 & echo $!; read _; kill -9 $! 2>/dev/null",
            dir.join("server.log").display()
        );
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

    /// The server's working directory (snapshots), removed when the handle drops.
    fn data_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "redis-cached-test-{}-{}",
            std::process::id(),
            self.port
        ))
    }

    /// Waits (at most 10 s) until the server accepts connections; if it never does, fails
    /// with what it logged (a port taken meanwhile, a refused argument, ...).
    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() >= deadline {
                let log =
                    std::fs::read_to_string(self.data_dir().join("server.log")).unwrap_or_default();
                panic!(
                    "redis-server does not listen on port {}; is it installed? run \
                     scripts/test. It logged:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
        let _ = std::fs::remove_dir_all(self.data_dir());
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

/// The `INFO` field `name` in `info`.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Waits until each running replica of `replicas` has every write `primary` took so far (its
/// `slave_repl_offset` reaches the primary's `master_repl_offset`). Returns how long it waited.
pub async fn wait_replica_offset(primary: &Node, replicas: &[&Node], limit: Duration) -> Duration {
    let info: String = primary
        .query(redis::cmd("INFO").arg("replication"))
        .expect("INFO replication");
    let offset: u64 = info_field(&info, "master_repl_offset")
        .and_then(|offset| offset.parse().ok())
        .expect("master_repl_offset");
    wait_until_async(limit, "the replicas have every write", || {
        for replica in replicas.iter().filter(|replica| replica.is_running()) {
            let info: String = replica
                .query(redis::cmd("INFO").arg("replication"))
                .map_err(|err| err.to_string())?;
            let replicated: u64 = info_field(&info, "slave_repl_offset")
                .and_then(|offset| offset.parse().ok())
                .unwrap_or(0);
            if replicated < offset {
                let port = replica.port();
                return Err(format!(
                    "the replica on {port} is at {replicated} of {offset}"
                ));
            }
        }
        Ok(())
    })
    .await
}

/// A port on 127.0.0.1 that nothing listens on, and its cluster bus port (`+ 10000`) too: to
/// start a server or a cluster node on, or to point a cache at and be refused.
///
/// Both lie below the kernel's ephemeral range (`ip_local_port_range`), where no outgoing
/// connection takes a local port: a port from that range, free when checked, could be taken
/// by another test's client before the server binds it ("Address already in use"). Within
/// this process no port (nor bus port) is handed out twice, so that servers started
/// together (a Sentinel setup's three) do not collide.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    const BUS_OFFSET: u16 = 10000;
    let (first, last) = non_ephemeral_ports(BUS_OFFSET);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let bindable = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    for attempt in 0u32..100_000 {
        hasher.write_u32(attempt);
        let port = first + (hasher.finish() % u64::from(last - first + 1)) as u16;
        let bus = port + BUS_OFFSET;
        if !handed_out.contains(&port)
            && !handed_out.contains(&bus)
            && bindable(port)
            && bindable(bus)
        {
            handed_out.extend([port, bus]);
            return port;
        }
    }
    panic!("no free port in {first}..={last} on 127.0.0.1 (nor its bus port)");
}

/// The ports `first..=last` whose `+ bus_offset` stays below the ephemeral range too (read
/// from `/proc`; Linux's default, 32768, elsewhere).
fn non_ephemeral_ports(bus_offset: u16) -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let first = 10000;
    let last = ephemeral_start
        .saturating_sub(bus_offset + 1)
        .max(first + 1000);
    (first, last)
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

/// `CONFIG SET name value` on the server behind `redis`.
pub async fn config_set(redis: &mut MultiplexedConnection, name: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(redis)
        .await
        .expect("CONFIG SET");
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

/// A plain redis-rs connection to the shared server, for looking at what the cache wrote.
pub async fn raw_connection() -> MultiplexedConnection {
    redis::Client::open(shared_url())
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the shared redis-server answers")
}

/// Says, on the test process's own stderr (past libtest's capture, so that it shows in every
/// run), that `test` was skipped and why. A test that needs what this server lacks calls
/// this and returns: never a silent pass.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {reason} (server: {})\n", server_binary());
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The server's version as `INFO server` gives it (`redis_version`: Valkey 8.1 says 7.2.4,
/// the Redis version it is compatible with), as (major, minor).
pub async fn server_version(redis: &mut MultiplexedConnection) -> (u32, u32) {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(redis)
        .await
        .expect("INFO server");
    let version = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))
        .expect("INFO server has redis_version");
    let mut parts = version.split('.').map(|part| part.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether the server behind `redis` answers a lookup with the native `SET .. NX GET`
/// (Redis 7.0 and later, every Valkey); before 7.0 the cache uses its `FETCH` script.
pub async fn native_lookup(redis: &mut MultiplexedConnection) -> bool {
    server_version(redis).await >= (7, 0)
}

/// The command a lookup runs on the server behind `redis`, as `INFO commandstats` names it:
/// `set` (`SET .. NX GET`) from Redis 7.0 on, `evalsha` (the `FETCH` script) before.
pub async fn lookup_command(redis: &mut MultiplexedConnection) -> &'static str {
    if native_lookup(redis).await {
        "set"
    } else {
        "evalsha"
    }
}

/// The server binary's own version, from `--version` (`v=7.0.15`; Valkey's own numbering,
/// `v=8.1.8`), as (major, minor). Read once, before any server starts: for arguments that
/// only some versions accept.
pub fn binary_version() -> (u32, u32) {
    static VERSION: OnceLock<(u32, u32)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let output = Command::new(server_binary())
            .arg("--version")
            .output()
            .expect("the server binary runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix("v="))
            .unwrap_or_else(|| panic!("no version in {text:?}"));
        let mut parts = version.split('.').map(|part| part.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    })
}

/// Starts a server on which `DEBUG` may be sent (from Redis 7.0 on, and on Valkey, it must
/// be enabled; 6.2 has no such switch and always allows it).
pub fn start_with_debug(args: &[&str]) -> RedisServer {
    let mut all = args.to_vec();
    if binary_version() >= (7, 0) {
        all.extend(["--enable-debug-command", "yes"]);
    }
    RedisServer::start_with(&all)
}

/// A TCP relay in front of a server, to hold back what the server sends: on its tracking
/// connections (those whose client sent `CLIENT TRACKING`), so that Redis's invalidation
/// pushes arrive only when the test lets them, or on the others, so that replies to reads
/// arrive after the pushes sent meanwhile. Everything else passes at once; the server is real.
/// The relay's tasks run on the test's runtime and end with it.
pub struct Relay {
    port: u16,
    state: std::sync::Arc<RelayState>,
}

#[derive(Default)]
struct RelayState {
    /// What is held back: (on tracking connections, on the others).
    hold: tokio::sync::watch::Sender<(bool, bool)>,
    /// Reads from the server held back on connections that do not track.
    replies_held: AtomicUsize,
    /// Reads from the server passed on to tracking connections.
    pushes_passed: AtomicUsize,
}

impl Relay {
    /// A relay on a free port to the server on `server_port`.
    pub async fn start(server_port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("a bound port").port();
        let state = std::sync::Arc::new(RelayState::default());
        let relay_state = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", server_port)).await
                else {
                    continue;
                };
                relay_connection(client, server, relay_state.clone());
            }
        });
        Relay { port, state }
    }

    /// `redis://127.0.0.1:PORT` of the relay.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds back (`true`) or lets through (`false`, which also sends what was held) what
    /// the server sends on tracking connections.
    pub fn hold_pushes(&self, hold: bool) {
        self.state.hold.send_modify(|(pushes, _)| *pushes = hold);
    }

    /// Holds back (`true`) or lets through (`false`, which also sends what was held) what
    /// the server sends on the connections that do not track: replies to commands.
    pub fn hold_replies(&self, hold: bool) {
        self.state.hold.send_modify(|(_, replies)| *replies = hold);
    }

    /// How many reads from the server are held back on connections that do not track.
    pub fn replies_held(&self) -> usize {
        self.state.replies_held.load(Ordering::SeqCst)
    }

    /// How many reads from the server were passed on to tracking connections so far.
    pub fn pushes_passed(&self) -> usize {
        self.state.pushes_passed.load(Ordering::SeqCst)
    }
}

fn relay_connection(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    state: std::sync::Arc<RelayState>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tracking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let is_tracking = tracking.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read) = client_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            let sent = &buffer[..read];
            if sent
                .windows(8)
                .any(|window| window.eq_ignore_ascii_case(b"TRACKING"))
            {
                is_tracking.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(sent).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut hold = state.hold.subscribe();
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read) = server_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            let tracks = tracking.load(Ordering::SeqCst);
            let held = |&(pushes, replies): &(bool, bool)| if tracks { pushes } else { replies };
            if held(&hold.borrow()) {
                state
                    .replies_held
                    .fetch_add(usize::from(!tracks), Ordering::SeqCst);
                let released = hold.wait_for(|hold| !held(hold)).await.is_ok();
                state
                    .replies_held
                    .fetch_sub(usize::from(!tracks), Ordering::SeqCst);
                if !released {
                    break;
                }
            }
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
            if tracks {
                state.pushes_passed.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
}
