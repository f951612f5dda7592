//! The example web service (`examples/server`), run as real processes against the harness's
//! `redis-server` and a fresh SQLite file, and driven over HTTP.
//!
//! The example's code is compiled into this test binary, and each server is this binary run
//! again with `SERVE_EXAMPLE` set, which runs the example's `main` (see [`serve`]). So the
//! servers are separate processes running the current code, whatever cargo built: `cargo
//! test --all-targets` builds examples as test harnesses, not as the binary `cargo run
//! --example server` runs.

mod harness;

#[path = "../examples/server/main.rs"]
mod example;

use harness::RedisServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---- The server process ---------------------------------------------------------------

/// Set in the environment of the server processes.
const SERVE: &str = "SERVE_EXAMPLE";

/// Not a test: the body of the server processes the tests start. Runs the example's `main`
/// (configured from the environment) and exits with its status.
#[test]
#[ignore = "the server processes the other tests start run this"]
fn serve() {
    if std::env::var_os(SERVE).is_some() {
        let code = example::main();
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    /// Creates an empty directory.
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "redis-cached-server-test-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }

    /// A SQLite file in this directory (created by the server).
    fn database_url(&self) -> String {
        format!("sqlite://{}", self.0.join("employees.sqlite3").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `server` process on a free port. A watchdog shell sends it SIGTERM when this handle
/// drops or the test process dies (its stdin closes either way).
struct Server {
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
    watchdog: Option<(Child, ChildStdin)>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the server on `redis_url` and `database_url`, and waits until it listens.
    fn start(redis_url: &str, database_url: &str) -> Server {
        Server::start_with(redis_url, database_url, &[])
    }

    /// [`Server::start`], with more variables in its environment.
    fn start_with(redis_url: &str, database_url: &str, env: &[(&str, &str)]) -> Server {
        let test_binary = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#""$0" "$@" & read _; kill -TERM $! 2>/dev/null; wait $!"#,
            ])
            .arg(test_binary)
            .args([
                "serve",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVE, "1")
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", database_url)
            .env("BIND", "127.0.0.1:0")
            .env("DB_LATENCY_MS", "0")
            .env("RUST_LOG", "info")
            .env_remove("CACHE_PREFIX")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let reader = {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                        let _ = address_tx.send(address);
                    }
                    logs.lock().unwrap().push(line);
                }
            })
        };
        let mut server = Server {
            base: String::new(),
            logs,
            watchdog: Some((child, stdin)),
            reader: Some(reader),
        };
        match address_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => server.base = format!("http://{address}"),
            Err(_) => panic!("the server did not start; its log:\n{}", server.log()),
        }
        server
    }

    /// Everything the server logged so far.
    fn log(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM, waits for the process to end, and returns its log and exit status.
    fn stop(mut self) -> (String, std::process::ExitStatus) {
        let status = self.shut_down().expect("the server was running");
        (self.log(), status)
    }

    /// Closes the watchdog's stdin (it then sends SIGTERM) and reaps it; `None` if done.
    fn shut_down(&mut self) -> Option<std::process::ExitStatus> {
        let (mut child, stdin) = self.watchdog.take()?;
        drop(stdin);
        let status = child.wait().ok();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

// ---- HTTP and Redis helpers -----------------------------------------------------------

/// One answer: status, `X-Cache` and the JSON body (`Null` when there is none).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    x_cache: Option<String>,
    etag: Option<String>,
    location: Option<String>,
    content_type: Option<String>,
    body: Value,
}

impl Reply {
    /// The `X-Cache` header, `(none)` when absent.
    fn cache(&self) -> &str {
        self.x_cache.as_deref().unwrap_or("(none)")
    }
}

/// An HTTP client for one server (a clone shares its connections).
#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// A client for `server` (no proxy: it is local).
    fn new(server: &Server) -> Api {
        Api::with(server, reqwest::Client::builder())
    }

    /// A client for `server` that does not follow redirects.
    fn not_following(server: &Server) -> Api {
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        Api::with(server, builder)
    }

    /// A client for `server` built from `builder`.
    fn with(server: &Server, builder: reqwest::ClientBuilder) -> Api {
        Api {
            base: server.base.clone(),
            client: builder
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
        }
    }

    /// Any request; `body` is sent as is.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("the server answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let (status, x_cache, etag, location, content_type) = (
            response.status(),
            header("x-cache"),
            header("etag"),
            header("location"),
            header("content-type"),
        );
        let text = response.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            x_cache,
            etag,
            location,
            content_type,
            body,
        }
    }

    /// `GET path`.
    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// `GET path` with request headers.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, None).await
    }

    /// A request with a JSON body.
    async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        let headers = [("content-type", "application/json")];
        self.send(method, path, &headers, Some(&body.to_string()))
            .await
    }

    /// The text of a `GET` that must answer 200 (redirects followed).
    async fn text(&self, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(url)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("a body")
    }
}

/// A plain connection to a Redis server, to look at what the service wrote.
struct Keys(redis::aio::MultiplexedConnection);

impl Keys {
    /// Connects to the Redis at `url`.
    async fn connect(url: &str) -> Keys {
        let client = redis::Client::open(url).expect("a valid URL");
        Keys(
            client
                .get_multiplexed_async_connection()
                .await
                .expect("redis answers"),
        )
    }

    /// `EXISTS key`.
    async fn exists(&mut self, key: &str) -> bool {
        let n: i64 = redis::cmd("EXISTS")
            .arg(key)
            .query_async(&mut self.0)
            .await
            .unwrap();
        n == 1
    }

    /// `TTL key` in seconds (-2: no such key).
    async fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query_async(&mut self.0)
            .await
            .unwrap()
    }

    /// Asserts which of `keys` exist, all at once for a readable failure.
    async fn assert_present(&mut self, expected: &[(&str, bool)]) {
        let mut actual = Vec::new();
        for (key, _) in expected {
            actual.push((*key, self.exists(key).await));
        }
        assert_eq!(actual, expected, "(key, exists)");
    }
}

/// The seed's departments (`db.rs`): employee `n` is in `DEPARTMENTS[(n - 1) % 5]`.
const DEPARTMENTS: [&str; 5] = ["Engineering", "Sales", "Marketing", "Finance", "Support"];

/// The department the seed puts employee `id` in.
fn seeded_department(id: i64) -> &'static str {
    DEPARTMENTS[((id - 1) % 5) as usize]
}

/// The ids of a list of employees.
fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|employee| employee["id"].as_i64().expect("an id"))
        .collect()
}

/// A fresh Redis, a fresh database and one server on them. Destructure a binding of it
/// (`let t = setup().await; let Setup { api, .. } = t;`), not the call itself: the fields
/// left out would drop, stopping the servers, at the end of the statement.
struct Setup {
    redis: RedisServer,
    _dir: TempDir,
    server: Server,
    api: Api,
    keys: Keys,
}

/// Starts a Redis and a server on a new database.
async fn setup() -> Setup {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let server = Server::start(&redis.url(), &dir.database_url());
    let api = Api::new(&server);
    let keys = Keys::connect(&redis.url()).await;
    Setup {
        redis,
        _dir: dir,
        server,
        api,
        keys,
    }
}

// ---- Tests ----------------------------------------------------------------------------

#[test]
fn the_example_checks_clean() {
    // This binary holds the example's code: its cached and invalidating functions only.
    let functions = redis_cached::functions();
    assert_eq!(functions.cached.len(), 4, "{functions:?}");
    assert!(functions.invalidating.len() >= 3, "{functions:?}");
    let report = redis_cached::check();
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn cached_reads_miss_then_hit_with_their_ttls() {
    let t = setup().await;
    let Setup { api, mut keys, .. } = t;

    let first = api.get("/employees/7").await;
    assert_eq!((first.status, first.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(
        first.body,
        json!({"id": 7, "name": "Donald Allen", "email": "donald.allen@example.com",
               "department": "Sales", "title": "Sales Manager"})
    );
    let second = api.get("/employees/7").await;
    assert_eq!((second.status, second.cache()), (StatusCode::OK, "HIT"));
    assert_eq!(second.body, first.body);

    let status = api.get("/employees/7/status").await;
    assert_eq!((status.status, status.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(
        status.body,
        json!({"employee_id": 7, "status": "out", "since": "2025-01-06T09:00:00.000Z"})
    );
    assert_eq!(api.get("/employees/7/status").await.cache(), "HIT");

    let department = api.get("/departments/Engineering/employees").await;
    assert_eq!(
        (department.status, department.cache()),
        (StatusCode::OK, "MISS")
    );
    let engineering = ids(&department.body);
    assert_eq!(engineering.len(), 200, "1,000 employees in 5 departments");
    assert_eq!(engineering, (1..=1000).step_by(5).collect::<Vec<_>>());
    let again = api.get("/departments/Engineering/employees").await;
    assert_eq!((again.cache(), &again.body), ("HIT", &department.body));

    // An unknown department is an empty list, cached like any other.
    let unknown = api.get("/departments/Nope/employees").await;
    assert_eq!(
        (unknown.status, unknown.cache(), &unknown.body),
        (StatusCode::OK, "MISS", &json!([]))
    );

    // TTLs: a day, 30 seconds, 5 minutes (a little slack for a slow machine).
    let ttl = keys.ttl("employee:7").await;
    assert!((86_300..=86_400).contains(&ttl), "employee TTL {ttl}");
    let ttl = keys.ttl("employee:7:status").await;
    assert!((1..=30).contains(&ttl), "status TTL {ttl}");
    let ttl = keys.ttl("department:Engineering:employees").await;
    assert!((200..=300).contains(&ttl), "department TTL {ttl}");
}

/// `GET /employees/{id}` carries a weak ETag of the entry it read; naming it in
/// `If-None-Match` is a 304 with no body, until a PUT changes the employee: then a 200 with
/// the new row and another ETag. Other routes have none. Mutation: `conditional` not
/// applied in `routes.rs` (no ETag).
#[tokio::test]
async fn an_employee_is_not_modified_until_a_write_changes_it() {
    let t = setup().await;
    let api = &t.api;
    let first = api.get("/employees/42").await;
    assert_eq!((first.status, first.cache()), (StatusCode::OK, "MISS"));
    let etag = first.etag.clone().expect("an ETag");
    assert!(etag.starts_with("W/\""), "{etag}");

    let again = api
        .get_with("/employees/42", &[("if-none-match", &etag)])
        .await;
    assert_eq!(
        (
            again.status,
            again.cache(),
            &again.body,
            again.etag.as_deref()
        ),
        (
            StatusCode::NOT_MODIFIED,
            "HIT",
            &Value::Null,
            Some(etag.as_str())
        )
    );
    assert_eq!(again.content_type, None);

    let mut changed = first.body.clone();
    changed["title"] = json!("Principal Engineer");
    changed.as_object_mut().map(|row| row.remove("id"));
    let put = api.json(Method::PUT, "/employees/42", &changed).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);

    let after = api
        .get_with("/employees/42", &[("if-none-match", &etag)])
        .await;
    assert_eq!((after.status, after.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(after.body["title"], "Principal Engineer");
    let new_etag = after.etag.expect("an ETag");
    assert_ne!(new_etag, etag);
    let revalidated = api
        .get_with("/employees/42", &[("if-none-match", &new_etag)])
        .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);

    // Not on the other routes, cached or not.
    assert_eq!(api.get("/employees/42/status").await.etag, None);
}

#[tokio::test]
async fn refresh_by_query_or_header_recomputes_and_overwrites() {
    let t = setup().await;
    let Setup { api, _dir: dir, .. } = t;
    assert_eq!(api.get("/employees/9").await.cache(), "MISS");
    assert_eq!(api.get("/employees/9/status").await.cache(), "MISS");
    assert_eq!(
        api.get("/departments/Finance/employees").await.cache(),
        "MISS"
    );

    // Change the database behind the service's back: the cache still has the old data.
    let db = sqlx::SqlitePool::connect(&dir.database_url())
        .await
        .unwrap();
    sqlx::query("UPDATE employees SET name = 'Changed Directly', status = 'out' WHERE id = 9")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let stale = api.get("/employees/9").await;
    assert_eq!(
        (stale.cache(), &stale.body["name"]),
        ("HIT", &json!("Frances Allen"))
    );

    // ?invalidate_cache=true skips the lookup and overwrites the entry...
    let fresh = api.get("/employees/9?invalidate_cache=true").await;
    assert_eq!(
        (fresh.cache(), &fresh.body["name"]),
        ("REFRESH", &json!("Changed Directly"))
    );
    let after = api.get("/employees/9").await;
    assert_eq!(
        (after.cache(), &after.body["name"]),
        ("HIT", &json!("Changed Directly"))
    );
    assert_eq!(
        api.get("/employees/9?invalidate_cache=false").await.cache(),
        "HIT"
    );
    assert_eq!(
        api.get("/employees/9?invalidate_cache=1").await.cache(),
        "REFRESH"
    );

    // ...and so does the request header Cache-Control: no-cache, on every cached GET.
    let no_cache = [("cache-control", "no-cache")];
    let status = api.get_with("/employees/9/status", &no_cache).await;
    assert_eq!(
        (status.cache(), &status.body["status"]),
        ("REFRESH", &json!("out"))
    );
    assert_eq!(api.get("/employees/9/status").await.cache(), "HIT");
    let department = api
        .get_with(
            "/departments/Finance/employees",
            &[("cache-control", "max-age=0, no-cache")],
        )
        .await;
    assert_eq!(department.cache(), "REFRESH");
    let names: Vec<&Value> = department
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["name"])
        .collect();
    assert!(names.contains(&&json!("Changed Directly")), "{names:?}");
    assert_eq!(
        api.get("/departments/Finance/employees?invalidate_cache=true")
            .await
            .cache(),
        "REFRESH"
    );
    assert_eq!(
        api.get("/departments/Finance/employees").await.cache(),
        "HIT"
    );
    assert_eq!(
        api.get_with("/employees/9", &[("cache-control", "max-age=60")])
            .await
            .cache(),
        "HIT"
    );
}

#[tokio::test]
async fn writes_invalidate_exactly_the_keys_they_make_stale() {
    let t = setup().await;
    let Setup { api, mut keys, .. } = t;
    // Employee 7 is in Sales, employee 8 in Marketing.
    assert_eq!(
        (seeded_department(7), seeded_department(8)),
        ("Sales", "Marketing")
    );
    let prime = [
        "/employees/7",
        "/employees/7/status",
        "/employees/8",
        "/employees/8/status",
        "/departments/Sales/employees",
        "/departments/Engineering/employees",
        "/departments/Marketing/employees",
        "/departments/Support/employees",
        "/employees/1001/status", // not yet: "no such employee" is cached (cache_none)
    ];
    for path in prime {
        api.get(path).await;
    }
    keys.assert_present(&[
        ("employee:7", true),
        ("employee:1001:status", true),
        ("employee:1001", false),
    ])
    .await;

    // PUT status: only the status entry.
    let put = api
        .json(Method::PUT, "/employees/7/status", &json!({"status": "in"}))
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    keys.assert_present(&[
        ("employee:7:status", false),
        ("employee:7", true),
        ("department:Sales:employees", true),
        ("employee:8:status", true),
    ])
    .await;
    let status = api.get("/employees/7/status").await;
    assert_eq!(
        (status.cache(), &status.body["status"]),
        ("MISS", &json!("in"))
    );
    assert_ne!(
        status.body["since"],
        json!("2025-01-06T09:00:00.000Z"),
        "since moved"
    );
    assert_eq!(status.body, put.body);

    // PUT employee, moving it from Sales to Engineering: the employee and both lists.
    let changes = json!({"name": "Donald Allen-Knuth", "email": "donald@example.com",
                         "department": "Engineering", "title": "Staff Engineer"});
    let put = api.json(Method::PUT, "/employees/7", &changes).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let mut expected = changes.clone();
    expected["id"] = json!(7);
    assert_eq!(put.body, expected);
    keys.assert_present(&[
        ("employee:7", false),
        ("department:Sales:employees", false),
        ("department:Engineering:employees", false),
        ("employee:7:status", true),
        ("department:Marketing:employees", true),
        ("employee:8", true),
    ])
    .await;
    let employee = api.get("/employees/7").await;
    assert_eq!((employee.cache(), &employee.body), ("MISS", &expected));
    let sales = api.get("/departments/Sales/employees").await;
    assert_eq!(sales.cache(), "MISS");
    assert!(!ids(&sales.body).contains(&7));
    let engineering = api.get("/departments/Engineering/employees").await;
    assert_eq!(engineering.cache(), "MISS");
    assert!(ids(&engineering.body).contains(&7));

    // DELETE: the employee, its status and its department's list.
    let deleted = api.send(Method::DELETE, "/employees/8", &[], None).await;
    assert_eq!(
        (deleted.status, &deleted.body),
        (StatusCode::NO_CONTENT, &Value::Null)
    );
    keys.assert_present(&[
        ("employee:8", false),
        ("employee:8:status", false),
        ("department:Marketing:employees", false),
        ("employee:7", true),
        ("department:Engineering:employees", true),
    ])
    .await;
    assert_eq!(api.get("/employees/8").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/employees/8/status").await.status,
        StatusCode::NOT_FOUND
    );
    let marketing = api.get("/departments/Marketing/employees").await;
    assert_eq!(marketing.cache(), "MISS");
    assert!(!ids(&marketing.body).contains(&8));
    let again = api.send(Method::DELETE, "/employees/8", &[], None).await;
    assert_eq!(again.body, json!({"detail": "Employee 8 not found"}));

    // POST: its department's list, and the status "no such employee" cached for its id.
    let new = json!({"name": "Grace Hopper", "email": "grace@example.com",
                     "department": "Support", "title": "Rear Admiral"});
    let created = api.json(Method::POST, "/employees", &new).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["id"], json!(1001));
    assert_eq!(created.location.as_deref(), Some("/employees/1001"));
    keys.assert_present(&[
        ("department:Support:employees", false),
        ("employee:1001:status", false),
        ("department:Engineering:employees", true),
        ("employee:7", true),
    ])
    .await;
    let status = api.get("/employees/1001/status").await;
    assert_eq!((status.status, status.cache()), (StatusCode::OK, "MISS"));
    assert_eq!(status.body["status"], json!("out"));
    let employee = api.get("/employees/1001").await;
    assert_eq!((employee.cache(), &employee.body), ("MISS", &created.body));
    let support = api.get("/departments/Support/employees").await;
    assert_eq!(support.cache(), "MISS");
    assert_eq!(ids(&support.body).last(), Some(&1001));
}

/// A create's keys come from the row it inserted (`<return.department>`, `<return.id>`):
/// after the POST, the department's list and the new employee's status (a "no such
/// employee" was cached for its id) are read fresh, while readers polled them throughout.
#[tokio::test]
async fn a_list_of_ids_is_read_through_the_same_entries_as_single_reads() {
    let t = setup().await;
    let Setup { api, mut keys, .. } = t;
    assert_eq!(api.get("/employees/1").await.cache(), "MISS");

    // One cached (1), two missing (3, 2), one that does not exist: the found ones, in the
    // order asked for, each now stored under its single read's key.
    let list = api.get("/employees?ids=3,1,2,99999").await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(ids(&list.body), [3, 1, 2]);
    assert_eq!(list.body[1], api.get("/employees/1").await.body);
    keys.assert_present(&[
        ("employee:2", true),
        ("employee:3", true),
        ("employee:99999", false),
    ])
    .await;
    assert_eq!(
        api.get("/employees/2").await.cache(),
        "HIT",
        "stored by the list"
    );

    // A write invalidates `employee:2`: the next list reads it again.
    let changes = json!({"name": "Renamed Person", "email": "renamed@example.com",
                         "department": "Sales", "title": "Clerk"});
    let put = api.json(Method::PUT, "/employees/2", &changes).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let after = api.get("/employees?ids=2,3").await;
    assert_eq!(after.body[0]["name"], "Renamed Person");
    assert_eq!(after.body[1], list.body[0]);

    // Bad lists: a 422 naming the query parameter.
    let too_many = (1..=101)
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for path in [
        "/employees?ids=1,x".to_owned(),
        "/employees".to_owned(),
        format!("/employees?ids={too_many}"),
    ] {
        let bad = api.get(&path).await;
        assert_eq!(
            bad.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {:?}",
            bad.body
        );
        assert_eq!(
            bad.body["detail"][0]["loc"],
            json!(["query", "ids"]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_create_is_seen_at_once_by_its_department_list_and_its_status() {
    let t = setup().await;
    let Setup { api, .. } = t;
    let before = api.get("/departments/Finance/employees").await;
    assert_eq!(before.cache(), "MISS");
    let absent = api.get("/employees/1001/status").await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/employees/1001/status").await.cache(),
        "HIT",
        "the absence is cached"
    );

    // Readers poll both while the POST runs, refilling the entries as they go.
    let polling = Arc::new(AtomicBool::new(true));
    let pollers: Vec<_> = ["/departments/Finance/employees", "/employees/1001/status"]
        .into_iter()
        .map(|path| {
            let (api, polling) = (api.clone(), Arc::clone(&polling));
            tokio::spawn(async move {
                while polling.load(Ordering::SeqCst) {
                    api.get(path).await;
                }
            })
        })
        .collect();
    let new = json!({"name": "Ada Lovelace", "email": "ada@example.com",
                     "department": "Finance", "title": "Analyst"});
    let created = api.json(Method::POST, "/employees", &new).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_i64().expect("an id");
    assert_eq!(id, 1001);

    // Every read that starts after the POST returned sees the new employee.
    for _ in 0..3 {
        let list = api.get("/departments/Finance/employees").await;
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(ids(&list.body).last(), Some(&id), "{}", list.cache());
        let status = api.get("/employees/1001/status").await;
        assert_eq!(
            (status.status, &status.body["status"]),
            (StatusCode::OK, &json!("out")),
            "{}",
            status.cache()
        );
    }
    polling.store(false, Ordering::SeqCst);
    for poller in pollers {
        poller.await.expect("the poller finished");
    }
    let employee = api.get("/employees/1001").await;
    assert_eq!(employee.body, created.body);
}

#[tokio::test]
async fn bad_input_gets_fastapi_style_answers() {
    let t = setup().await;
    let Setup { api, server, .. } = t;
    let invalid = |reply: &Reply, loc: Value, kind: &str| {
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            reply.body
        );
        let detail = reply.body["detail"].as_array().expect("a list of errors");
        assert!(
            detail.iter().any(|error| error["loc"] == loc
                && error["type"] == kind
                && error["msg"].is_string()),
            "no {kind} error at {loc} in {detail:?}"
        );
    };

    for path in [
        "/employees/abc",
        "/employees/1.5/status",
        "/employees/99999999999999999999",
    ] {
        let reply = api.get(path).await;
        invalid(&reply, json!(["path", "id"]), "int_parsing");
    }
    let reply = api.get("/employees/abc").await;
    assert_eq!(reply.body["detail"][0]["input"], json!("abc"));
    invalid(
        &api.get("/employees/1?invalidate_cache=maybe").await,
        json!(["query", "invalidate_cache"]),
        "bool_parsing",
    );
    let reply = api.send(Method::DELETE, "/employees/x", &[], None).await;
    invalid(&reply, json!(["path", "id"]), "int_parsing");

    let valid = json!({"name": "A", "email": "a@example.com", "department": "D", "title": "T"});
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("email");
    invalid(
        &api.json(Method::POST, "/employees", &missing).await,
        json!(["body", "email"]),
        "missing",
    );
    let mut wrong_type = valid.clone();
    wrong_type["title"] = json!(5);
    invalid(
        &api.json(Method::PUT, "/employees/1", &wrong_type).await,
        json!(["body", "title"]),
        "string_type",
    );
    let mut blank = valid.clone();
    blank["name"] = json!("  ");
    blank["email"] = json!("not-an-email");
    let reply = api.json(Method::POST, "/employees", &blank).await;
    invalid(&reply, json!(["body", "name"]), "string_too_short");
    invalid(&reply, json!(["body", "email"]), "value_error");
    let reply = api
        .send(
            Method::POST,
            "/employees",
            &[("content-type", "application/json")],
            Some("{\"name\":"),
        )
        .await;
    invalid(&reply, json!(["body"]), "json_invalid");
    let reply = api
        .send(
            Method::POST,
            "/employees",
            &[("content-type", "application/json")],
            None,
        )
        .await;
    invalid(&reply, json!(["body"]), "missing");
    invalid(
        &api.json(Method::POST, "/employees", &json!([1, 2])).await,
        json!(["body"]),
        "model_attributes_type",
    );
    let reply = api
        .send(
            Method::POST,
            "/employees",
            &[("content-type", "text/plain")],
            Some("hi"),
        )
        .await;
    invalid(&reply, json!(["header", "content-type"]), "content_type");
    let reply = api
        .json(
            Method::PUT,
            "/employees/1/status",
            &json!({"status": "maybe"}),
        )
        .await;
    invalid(&reply, json!(["body", "status"]), "enum");
    invalid(
        &api.json(Method::PUT, "/employees/1/status", &json!({}))
            .await,
        json!(["body", "status"]),
        "missing",
    );

    // 404s name what is missing.
    let not_found = json!({"detail": "Employee 5000 not found"});
    for reply in [
        api.get("/employees/5000").await,
        api.get("/employees/5000/status").await,
        api.json(Method::PUT, "/employees/5000", &valid).await,
        api.json(
            Method::PUT,
            "/employees/5000/status",
            &json!({"status": "in"}),
        )
        .await,
        api.send(Method::DELETE, "/employees/5000", &[], None).await,
    ] {
        assert_eq!(
            (reply.status, &reply.body),
            (StatusCode::NOT_FOUND, &not_found)
        );
    }
    let reply = api.get("/nowhere").await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::NOT_FOUND, &json!({"detail": "Not Found"}))
    );
    let reply = api.send(Method::PATCH, "/employees/1", &[], None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.body, json!({"detail": "Method Not Allowed"}));

    // Nothing above was a server error.
    assert!(
        !server.log().contains("database call failed"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_422_lists_every_invalid_field_at_once() {
    let t = setup().await;
    let Setup { api, .. } = t;
    let before = api.get("/employees/1").await;
    assert_eq!(before.status, StatusCode::OK);
    let missing =
        |field: &str| json!({"type": "missing", "loc": ["body", field], "msg": "Field required"});
    let all_missing = json!({"detail": [
        missing("name"), missing("email"), missing("department"), missing("title"),
    ]});
    for (method, path) in [(Method::POST, "/employees"), (Method::PUT, "/employees/1")] {
        let reply = api.json(method, path, &json!({})).await;
        assert_eq!(
            (reply.status, &reply.body),
            (StatusCode::UNPROCESSABLE_ENTITY, &all_missing),
            "{path}"
        );
    }

    // Several invalid values: one entry each, in the fields' order, whatever the kind.
    let too_long = "x".repeat(201);
    let body = json!({"name": " ", "email": "nope", "department": 5, "title": too_long});
    let reply = api.json(Method::POST, "/employees", &body).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body,
        json!({"detail": [
            {"type": "string_too_short", "loc": ["body", "name"],
             "msg": "String should have at least 1 character", "input": " "},
            {"type": "value_error", "loc": ["body", "email"],
             "msg": "value is not a valid email address", "input": "nope"},
            {"type": "string_type", "loc": ["body", "department"],
             "msg": "Input should be a valid string"},
            {"type": "string_too_long", "loc": ["body", "title"],
             "msg": "String should have at most 200 characters", "input": too_long},
        ]})
    );
    // Missing and invalid together.
    let reply = api
        .json(
            Method::PUT,
            "/employees/1",
            &json!({"name": "", "title": null}),
        )
        .await;
    let locs: Vec<(&Value, &Value)> = reply.body["detail"]
        .as_array()
        .expect("a list of errors")
        .iter()
        .map(|error| (&error["loc"][1], &error["type"]))
        .collect();
    assert_eq!(
        locs,
        [
            (&json!("name"), &json!("string_too_short")),
            (&json!("email"), &json!("missing")),
            (&json!("department"), &json!("missing")),
            (&json!("title"), &json!("string_type")),
        ]
    );

    // A single problem is still a single entry, with today's message.
    let reply = api
        .json(
            Method::POST,
            "/employees",
            &json!({"name": "A", "department": "D", "title": "T"}),
        )
        .await;
    assert_eq!(reply.body, json!({"detail": [missing("email")]}),);
    let reply = api
        .json(
            Method::PUT,
            "/employees/1/status",
            &json!({"status": "maybe"}),
        )
        .await;
    assert_eq!(
        reply.body,
        json!({"detail": [{"type": "enum", "loc": ["body", "status"],
                           "msg": "Unknown variant `maybe`, expected `in` or `out`"}]})
    );
    // Nothing was written.
    assert_eq!(api.get("/employees/1").await.body, before.body);
}

/// Asserts `reply` is a JSON error answer with `status` and a string `detail` containing
/// `text`.
fn assert_json_error(reply: &Reply, status: StatusCode, text: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "{:?}",
        reply.body
    );
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(text), "{text:?} not in {:?}", reply.body);
}

#[tokio::test]
async fn the_root_redirects_to_the_docs() {
    let t = setup().await;
    let Setup { api, server, .. } = t;
    let reply = Api::not_following(&server).get("/").await;
    assert_eq!(
        (reply.status, reply.location.as_deref()),
        (StatusCode::TEMPORARY_REDIRECT, Some("/docs"))
    );
    assert_eq!(
        reply.body,
        json!({"docs": "/docs", "openapi": "/openapi.json"})
    );
    let docs = api.text("/").await; // followed: /docs, then /docs/
    assert!(docs.contains("swagger-ui"), "{docs}");
    let post = api.send(Method::POST, "/", &[], None).await;
    assert_json_error(&post, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}

#[tokio::test]
async fn errors_at_the_http_edge_are_json() {
    let t = setup().await;
    let Setup { api, .. } = t;

    // Percent-encoded bytes that are not UTF-8: a 422 naming the parameter, as sent.
    let unicode = |param: &str| {
        json!({"detail": [{"type": "string_unicode", "loc": ["path", param],
            "msg": "Input should be a valid string, unable to parse raw data as a unicode string",
            "input": "%FF"}]})
    };
    for (path, param) in [
        ("/employees/%FF", "id"),
        ("/employees/%FF/status", "id"),
        ("/departments/%FF/employees", "name"),
    ] {
        let reply = api.get(path).await;
        assert_eq!(
            (reply.status, &reply.body),
            (StatusCode::UNPROCESSABLE_ENTITY, &unicode(param)),
            "{path}"
        );
    }
    let reply = api.send(Method::DELETE, "/employees/%FF", &[], None).await;
    assert_eq!(reply.body, unicode("id"));

    // 414 past 8 KiB of path and query; up to it, served.
    let target = |len: usize| {
        let name = "a".repeat(len - "/departments//employees".len());
        format!("/departments/{name}/employees")
    };
    let reply = api.get(&target(8192)).await;
    assert_eq!((reply.status, &reply.body), (StatusCode::OK, &json!([])));
    let reply = api.get(&target(8193)).await;
    assert_json_error(&reply, StatusCode::URI_TOO_LONG, "URI Too Long");
    assert_json_error(&reply, StatusCode::URI_TOO_LONG, "8192");
    let long_query = format!(
        "/employees/1?invalidate_cache=true&pad={}",
        "b".repeat(9000)
    );
    assert_json_error(
        &api.get(&long_query).await,
        StatusCode::URI_TOO_LONG,
        "URI Too Long",
    );
    let reply = api
        .send(Method::PUT, &target(10_000), &[], Some("{}"))
        .await;
    assert_json_error(&reply, StatusCode::URI_TOO_LONG, "URI Too Long");

    // 405, on the API and on the documentation's routes.
    for (method, path) in [
        (Method::PATCH, "/employees/1"),
        (Method::POST, "/health"),
        (Method::DELETE, "/openapi.json"),
        (Method::POST, "/docs/"),
    ] {
        let reply = api.send(method, path, &[], None).await;
        assert_json_error(&reply, StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }

    // 413 past 2 MiB of body.
    let big = format!("{{\"name\": \"{}\"}}", "n".repeat(2 * 1024 * 1024));
    let json = [("content-type", "application/json")];
    for (method, path) in [
        (Method::POST, "/employees"),
        (Method::PUT, "/employees/1"),
        (Method::PUT, "/employees/1/status"),
    ] {
        let reply = api.send(method, path, &json, Some(&big)).await;
        assert_json_error(
            &reply,
            StatusCode::PAYLOAD_TOO_LARGE,
            "length limit exceeded",
        );
    }

    // The Swagger UI's own answers, once text or empty.
    assert_json_error(
        &api.get("/docs/%FF").await,
        StatusCode::BAD_REQUEST,
        "UTF-8",
    );
    let reply = api.get("/docs/nowhere").await;
    assert_eq!(
        (reply.status, &reply.body),
        (StatusCode::NOT_FOUND, &json!({"detail": "Not Found"}))
    );
}

#[tokio::test]
async fn openapi_lists_every_route_and_docs_are_served() {
    let t = setup().await;
    let Setup { api, .. } = t;
    let spec = api.get("/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    let paths = spec.body["paths"].as_object().expect("paths");
    let mut routes: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().unwrap().keys();
            methods
                .filter(|m| m.as_str() != "parameters")
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /employees/{id}",
            "GET /departments/{name}/employees",
            "GET /employees",
            "GET /employees/{id}",
            "GET /employees/{id}/status",
            "GET /health",
            "GET /metrics",
            "POST /employees",
            "PUT /employees/{id}",
            "PUT /employees/{id}/status",
        ]
    );
    let get = &paths["/employees/{id}"]["get"];
    let params: Vec<&Value> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(
        params,
        [
            &json!("id"),
            &json!("invalidate_cache"),
            &json!("Cache-Control")
        ]
    );
    assert!(get["responses"]["200"]["headers"]["X-Cache"].is_object());
    assert!(spec.body["components"]["schemas"]["Employee"].is_object());

    let docs = api.text("/docs").await; // redirected to /docs/
    assert!(docs.contains("swagger-ui"), "{docs}");
    let init = api.text("/docs/swagger-initializer.js").await;
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(
        api.text("/docs/swagger-ui-bundle.js").await.len() > 100_000,
        "served from the binary"
    );
}

#[tokio::test]
async fn openapi_states_the_constraints_and_the_error_answers() {
    let t = setup().await;
    let Setup { api, .. } = t;
    let spec = api.get("/openapi.json").await.body;
    let schemas = &spec["components"]["schemas"];

    // The body's constraints...
    let input = &schemas["EmployeeInput"]["properties"];
    for field in ["name", "email", "department", "title"] {
        assert_eq!(
            (&input[field]["minLength"], &input[field]["maxLength"]),
            (&json!(1), &json!(200)),
            "{field}"
        );
    }
    for field in ["name", "department", "title"] {
        assert_eq!(input[field]["pattern"], json!("\\S"), "not blank: {field}");
    }
    assert_eq!(input["email"]["format"], json!("email"));
    assert_eq!(schemas["Presence"]["enum"], json!(["in", "out"]));
    assert_eq!(
        schemas["StatusUpdate"]["properties"]["status"]["$ref"],
        json!("#/components/schemas/Presence")
    );

    // ...are the ones the server enforces.
    let max = input["name"]["maxLength"].as_u64().expect("a number") as usize;
    let employee = |name: String, email: &str| json!({"name": name, "email": email, "department": "Support", "title": "Clerk"});
    let created = api
        .json(
            Method::POST,
            "/employees",
            &employee("n".repeat(max), "n@example.com"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    for (body, kind) in [
        (
            employee("n".repeat(max + 1), "n@example.com"),
            "string_too_long",
        ),
        (employee(String::new(), "n@example.com"), "string_too_short"),
        (
            employee(" ".to_owned(), "n@example.com"),
            "string_too_short",
        ),
        (employee("N".to_owned(), "not-an-email"), "value_error"),
    ] {
        let reply = api.json(Method::POST, "/employees", &body).await;
        assert_eq!(
            (reply.status, &reply.body["detail"][0]["type"]),
            (StatusCode::UNPROCESSABLE_ENTITY, &json!(kind)),
            "{body}"
        );
    }
    for status in schemas["Presence"]["enum"].as_array().expect("values") {
        let reply = api
            .json(
                Method::PUT,
                "/employees/1/status",
                &json!({"status": status}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{status}");
    }

    // The error answers, on the routes where they can happen, with their bodies' schemas.
    let detail = json!({"$ref": "#/components/schemas/Detail"});
    let validation = json!({"$ref": "#/components/schemas/ValidationErrors"});
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let route = format!("{} {path}", method.to_uppercase());
            let responses = &operation["responses"];
            let body = |code: &str| &responses[code]["content"]["application/json"]["schema"];
            for code in ["405", "414"] {
                assert_eq!(body(code), &detail, "{code} on {route}");
            }
            let takes_body = operation["requestBody"].is_object();
            assert_eq!(responses["413"].is_object(), takes_body, "413 on {route}");
            if takes_body {
                assert_eq!(body("413"), &detail, "413 on {route}");
            }
            let operations_route = path == "/health" || path == "/metrics";
            assert_eq!(
                responses["500"].is_object(),
                !operations_route,
                "500 on {route}"
            );
            assert_eq!(
                responses["422"].is_object(),
                !operations_route,
                "422 on {route}"
            );
            if !operations_route {
                assert_eq!(body("500"), &detail, "500 on {route}");
                assert_eq!(body("422"), &validation, "422 on {route}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
    assert_eq!(
        schemas["ValidationErrors"]["properties"]["detail"]["items"]["$ref"],
        json!("#/components/schemas/FieldError")
    );
    let mut required: Vec<&str> = schemas["FieldError"]["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(required, ["loc", "msg", "type"]);

    // X-Cache: every value the runtime gives, on every cached read.
    for path in [
        "/employees/{id}",
        "/employees/{id}/status",
        "/departments/{name}/employees",
    ] {
        let header = &spec["paths"][path]["get"]["responses"]["200"]["headers"]["X-Cache"];
        assert_eq!(
            header["schema"]["enum"],
            json!(["HIT", "COALESCED", "MISS", "REFRESH", "BYPASS"]),
            "{path}"
        );
        let description = header["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("COALESCED") && description.contains("BYPASS"),
            "{description}"
        );
    }
    let about = spec["info"]["description"].as_str().unwrap_or_default();
    assert!(
        about.contains("COALESCED") && about.contains("BYPASS"),
        "{about}"
    );
}

/// The sum of `name{function="<crate>::<modules>::repo::<function>",...} value` lines of a
/// Prometheus text page (the `example` module of this test binary, `server::repo` in the
/// example binary).
fn counter(page: &str, name: &str, function: &str) -> u64 {
    let suffix = format!("::repo::{function}");
    page.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix("{function=\""))
        .filter_map(|rest| rest.split_once('"'))
        .filter(|(label, _)| label.ends_with(&suffix))
        .filter_map(|(_, rest)| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn metrics_count_the_hits_and_misses_just_made() {
    let t = setup().await;
    let Setup { api, .. } = t;
    for _ in 0..3 {
        api.get("/employees/11").await; // 1 miss, 2 hits
    }
    api.get("/employees/11?invalidate_cache=true").await; // 1 refresh
    for _ in 0..2 {
        api.get("/departments/Sales/employees").await; // 1 miss, 1 hit
    }
    api.json(
        Method::PUT,
        "/employees/11/status",
        &json!({"status": "in"}),
    )
    .await; // 1 key

    let page = api.text("/metrics").await;
    let count = |name, function| counter(&page, name, function);
    assert_eq!(count("redis_cached_misses_total", "employee"), 1, "{page}");
    assert_eq!(count("redis_cached_hits_total", "employee"), 2, "{page}");
    assert_eq!(
        count("redis_cached_refreshes_total", "employee"),
        1,
        "{page}"
    );
    assert_eq!(
        count("redis_cached_misses_total", "department_employees"),
        1,
        "{page}"
    );
    assert_eq!(
        count("redis_cached_hits_total", "department_employees"),
        1,
        "{page}"
    );
    assert_eq!(
        count("redis_cached_invalidations_total", "set_status"),
        1,
        "{page}"
    );
    assert_eq!(count("redis_cached_errors_total", "employee"), 0, "{page}");
    assert!(
        page.contains("# TYPE redis_cached_body_duration_seconds histogram"),
        "{page}"
    );
    assert!(
        page.contains("redis_cached_cache_duration_seconds_bucket{"),
        "{page}"
    );
}

#[tokio::test]
async fn the_inspection_page_is_mounted_at_admin_cache() {
    let t = setup().await;
    let Setup { api, .. } = t;
    api.get("/employees/11").await; // a miss
    api.get("/employees/11").await; // a hit

    let page = api.text("/admin/cache").await;
    assert!(page.contains("repo::employee</code>"), "{page}");
    assert!(page.contains("employee:&lt;id&gt;:status"), "{page}");
    assert!(
        page.contains("href=\"/admin/cache/functions.json\""),
        "{page}"
    );

    let functions = api.get("/admin/cache/functions.json").await;
    assert_eq!(functions.status, StatusCode::OK);
    let employee = functions.body["cached"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|function| {
            function["path"]
                .as_str()
                .is_some_and(|path| path.ends_with("::employee"))
        })
        .expect("the employee read is listed");
    assert_eq!(employee["key"], "employee:<id>");
    assert_eq!(
        (&employee["stats"]["misses"], &employee["stats"]["hits"]),
        (&json!(1), &json!(1)),
        "{employee}"
    );

    let key = api.get("/admin/cache/key.json?key=employee:11").await;
    assert_eq!(key.status, StatusCode::OK);
    assert_eq!(key.body["state"], "value", "{}", key.body);
    assert_eq!(key.body["value"]["id"], 11, "{}", key.body);
    let ttl = key.body["ttl_ms"].as_u64().expect("a TTL");
    assert!((86_000_000..=86_400_000).contains(&ttl), "{ttl}");
}

#[tokio::test]
async fn health_reports_redis_down_and_the_service_keeps_serving() {
    let t = setup().await;
    let Setup { mut redis, api, .. } = t;
    let health = api.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.body,
        json!({"status": "ok", "database": {"status": "up"},
               "cache": {"status": "up", "backend": "redis"}})
    );
    assert_eq!(api.get("/employees/12").await.cache(), "MISS");

    redis.kill();
    let health = api.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], json!("degraded"));
    assert_eq!(health.body["cache"]["status"], json!("down"));
    assert!(health.body["cache"]["error"].is_string());
    assert_eq!(health.body["database"], json!({"status": "up"}));
    // Still serving, from the database.
    for _ in 0..2 {
        let employee = api.get("/employees/12").await;
        assert_eq!(
            (employee.status, employee.cache()),
            (StatusCode::OK, "BYPASS")
        );
    }
    let put = api
        .json(
            Method::PUT,
            "/employees/12/status",
            &json!({"status": "out"}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);

    // Back to ok once Redis is.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.get("/health").await.body["status"] != json!("ok") {
        assert!(Instant::now() < deadline, "health did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn runs_on_memory_when_redis_does_not_answer_at_start_up() {
    let url = format!("redis://127.0.0.1:{}", harness::free_port());
    let dir = TempDir::new();
    let server = Server::start(&url, &dir.database_url());
    let api = Api::new(&server);
    let health = api.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], json!("degraded"));
    assert_eq!(health.body["cache"]["backend"], json!("memory"));
    assert_eq!(api.get("/employees/3").await.cache(), "MISS");
    assert_eq!(api.get("/employees/3").await.cache(), "HIT");
    let log = server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("did not answer"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear line:\n{log}");
    assert!(
        lines[0].contains("mem://") && lines[0].contains(&url),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn two_servers_sharing_redis_and_the_database_see_each_others_writes() {
    let redis = RedisServer::start();
    let dir = TempDir::new();
    let a = Server::start(&redis.url(), &dir.database_url());
    let b = Server::start(&redis.url(), &dir.database_url());
    let (a, b) = (Api::new(&a), Api::new(&b));
    assert_ne!(a.base, b.base);

    // One cache: what B read, A finds.
    assert_eq!(b.get("/employees/5").await.cache(), "MISS");
    assert_eq!(a.get("/employees/5").await.cache(), "HIT");
    assert_eq!(b.get("/employees/5/status").await.cache(), "MISS");
    assert_eq!(
        b.get("/departments/Finance/employees").await.cache(),
        "MISS"
    );

    // A write through A is seen by the very next GET through B.
    let changes = json!({"name": "Renamed Through A", "email": "a@example.com",
                         "department": "Finance", "title": "CFO"});
    assert_eq!(
        a.json(Method::PUT, "/employees/5", &changes).await.status,
        StatusCode::OK
    );
    let seen = b.get("/employees/5").await;
    assert_eq!(
        (seen.cache(), &seen.body["name"]),
        ("MISS", &json!("Renamed Through A"))
    );

    let status = a
        .json(
            Method::PUT,
            "/employees/5/status",
            &json!({"status": "out"}),
        )
        .await;
    let seen = b.get("/employees/5/status").await;
    assert_eq!((seen.cache(), &seen.body), ("MISS", &status.body));

    let new = json!({"name": "Made On A", "email": "m@example.com", "department": "Finance", "title": "Clerk"});
    let created = a.json(Method::POST, "/employees", &new).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let finance = b.get("/departments/Finance/employees").await;
    assert_eq!(finance.cache(), "MISS");
    assert!(ids(&finance.body).contains(&created.body["id"].as_i64().unwrap()));

    assert_eq!(
        a.send(Method::DELETE, "/employees/5", &[], None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(b.get("/employees/5").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        b.get("/employees/5/status").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stops_gracefully_on_sigterm() {
    let t = setup().await;
    let Setup { api, server, .. } = t;
    assert_eq!(api.get("/employees/1").await.status, StatusCode::OK);
    drop(api);
    let (log, status) = server.stop();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        log.lines()
            .last()
            .is_some_and(|line| line.ends_with("stopped")),
        "{log}"
    );
}

#[tokio::test]
async fn with_an_otlp_endpoint_set_the_traces_are_exported() {
    // A collector of OTLP over HTTP: keeps the (protobuf) bodies posted to /v1/traces.
    let bodies: Arc<Mutex<Vec<u8>>> = Arc::default();
    let collector = {
        let bodies = Arc::clone(&bodies);
        axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                bodies.lock().unwrap().extend_from_slice(&body);
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the collector");
    let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let redis = RedisServer::start();
    let dir = TempDir::new();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = Server::start_with(&redis.url(), &dir.database_url(), &env);
    let api = Api::new(&server);
    assert_eq!(
        api.get("/employees/3").await.x_cache.as_deref(),
        Some("MISS")
    );
    let started = Instant::now();
    // Strings are plain bytes in protobuf: the request's span, the cached call's, the body's
    // and the service's name.
    let wanted: [&[u8]; 4] = [
        b"GET /employees/{id}",
        b"cache.get",
        b"cache.body",
        b"redis-cached-example",
    ];
    loop {
        let received = bodies.lock().unwrap().clone();
        let found = |text: &[u8]| received.windows(text.len()).any(|window| window == text);
        if wanted.iter().all(|text| found(text)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not exported within 20 s ({} bytes received); the log:\n{}",
            received.len(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
