//! Keys from the write's result: `#[invalidates]` templates naming `<return>` or
//! `<return.field>` are rendered after the body from the stored part of the result (the
//! value, `Ok(t)`, `Some(t)`, `Ok(Some(t))`), and deleted with the keys rendered from the
//! arguments in one `UNLINK`; without that part (an `Err`, a `None`) only the argument keys
//! go. Against a real redis-server.
//!
//! Each test also checks that a result that has the part deletes the keys rendered from it,
//! so that every test fails if result keys are never rendered.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, commit, invalidates, redis_cached, transaction, with_outcome};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{eventually, raw_exists, raw_set};
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Employee {
    id: u64,
    department: String,
}

/// The "database": rows with ids given by the insert, and a switch that makes the next
/// write fail.
#[derive(Default)]
struct Db {
    rows: Mutex<Vec<Employee>>,
    next_id: AtomicU64,
    fail: AtomicBool,
    /// Opened by the test to let a write finish (see `a_dropped_caller_...`).
    gate: Option<Arc<Notify>>,
}

impl Db {
    fn insert(&self, department: &str) -> Result<Employee, String> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err("constraint violated".to_owned());
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let row = Employee {
            id,
            department: department.to_owned(),
        };
        self.rows.lock().unwrap().push(row.clone());
        Ok(row)
    }

    fn employee(&self, id: u64) -> Option<Employee> {
        let rows = self.rows.lock().unwrap();
        rows.iter().find(|row| row.id == id).cloned()
    }

    fn department(&self, name: &str) -> Vec<u64> {
        let rows = self.rows.lock().unwrap();
        let members = rows.iter().filter(|row| row.department == name);
        members.map(|row| row.id).collect()
    }

    /// Moves an employee; `None` for an unknown id.
    fn transfer(&self, id: u64, to: &str) -> Option<Employee> {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.iter_mut().find(|row| row.id == id)?;
        row.department = to.to_owned();
        Some(row.clone())
    }
}

// ---- The cached reads -----------------------------------------------------------------

/// "No such employee" is stored too, as a poller's read before the insert would.
#[redis_cached(key = "employee:<id>", ttl = 600, cache = cache, cache_none = true)]
async fn employee(cache: &Cache, db: &Db, id: u64) -> Option<Employee> {
    db.employee(id)
}

#[redis_cached(key = "department:<name>:employees", ttl = 600, cache = cache)]
async fn department(cache: &Cache, db: &Db, name: &str) -> Vec<u64> {
    db.department(name)
}

/// Tagged with its department, for `tags = [...]` naming the result.
#[redis_cached(key = "tagged:<id>", ttl = 600, tags = ["department:<dept>"], cache = cache)]
async fn tagged(cache: &Cache, db: &Db, dept: &str, id: u64) -> Option<Employee> {
    db.employee(id)
}

// ---- The writes, one per shape --------------------------------------------------------

/// `Result<T, E>`: the new id and the department are known only from the inserted row;
/// `inserts:<region>` is rendered from an argument, at entry.
#[invalidates(
    "employee:<return.id>",
    "department:<return.department>:employees",
    "inserts:<region>",
    cache = cache
)]
async fn create(cache: &Cache, db: &Db, region: &str, dept: &str) -> Result<Employee, String> {
    if let Some(gate) = &db.gate {
        gate.notified().await;
    }
    db.insert(dept)
}

/// `Option<T>`: the department moved to is the row's.
#[invalidates("employee:<id>", "department:<return.department>:employees", cache = cache)]
async fn transfer(cache: &Cache, db: &Db, id: u64, to: &str) -> Option<Employee> {
    db.transfer(id, to)
}

/// `Result<Option<T>, E>`.
#[invalidates("employee:<id>", "department:<return.department>:employees", cache = cache)]
async fn try_transfer(
    cache: &Cache,
    db: &Db,
    id: u64,
    to: &str,
) -> Result<Option<Employee>, String> {
    if db.fail.swap(false, Ordering::SeqCst) {
        return Err("deadlock".to_owned());
    }
    Ok(db.transfer(id, to))
}

/// A whole value: `<return>` is the new id itself.
#[invalidates("employee:<return>", cache = cache)]
async fn create_id(cache: &Cache, db: &Db, dept: &str) -> u64 {
    db.insert(dept).expect("no failure planned").id
}

/// Tags from the result, beside a key from it.
#[invalidates("employee:<return.id>", tags = ["department:<return.department>"], cache = cache)]
async fn create_tagged(cache: &Cache, db: &Db, dept: &str) -> Result<Employee, String> {
    db.insert(dept)
}

// ---- Helpers --------------------------------------------------------------------------

/// Writes `keys` (without the prefix) into Redis, as stale entries.
async fn plant(cache: &Cache, keys: &[&str]) {
    for key in keys {
        raw_set(&format!("{}{key}", cache.prefix()), b"\"stale\"").await;
    }
}

/// Which of `keys` (without the prefix) exist in Redis, as `(key, exists)`.
async fn existing(cache: &Cache, keys: &[&'static str]) -> Vec<(&'static str, bool)> {
    let mut out = Vec::new();
    for key in keys {
        out.push((*key, raw_exists(&format!("{}{key}", cache.prefix())).await));
    }
    out
}

// ---- Tests ----------------------------------------------------------------------------

/// An insert's `Ok` row names the keys to delete: the new employee's (where a "no such
/// employee" was cached) and its department's list. Readers see the new data at once.
#[tokio::test]
async fn an_ok_result_deletes_the_keys_rendered_from_it() {
    let cache = support::redis_cache("result_ok").await;
    let db = Db::default();
    assert_eq!(employee(&cache, &db, 1).await, None);
    assert_eq!(department(&cache, &db, "Support").await, Vec::<u64>::new());
    assert_eq!(department(&cache, &db, "Sales").await, Vec::<u64>::new());
    plant(&cache, &["inserts:eu"]).await;

    let created = create(&cache, &db, "eu", "Support").await;
    assert_eq!(
        created,
        Ok(Employee {
            id: 1,
            department: "Support".into()
        })
    );
    assert_eq!(
        existing(
            &cache,
            &[
                "employee:1",
                "department:Support:employees",
                "inserts:eu",
                "department:Sales:employees"
            ]
        )
        .await,
        [
            ("employee:1", false),
            ("department:Support:employees", false),
            ("inserts:eu", false),
            ("department:Sales:employees", true),
        ]
    );
    let (row, outcome) = with_outcome(employee(&cache, &db, 1)).await;
    assert_eq!((row, outcome), (created.ok(), Some(Outcome::Miss)));
    let (list, outcome) = with_outcome(department(&cache, &db, "Support")).await;
    assert_eq!((list, outcome), (vec![1], Some(Outcome::Miss)));
    let (_, outcome) = with_outcome(department(&cache, &db, "Sales")).await;
    assert_eq!(outcome, Some(Outcome::Hit));
}

/// A failed insert has no row: the keys from the arguments are deleted all the same (a
/// failed write may have half-applied), the keys from the result are not rendered, and
/// nothing panics.
#[tokio::test]
async fn an_err_deletes_the_argument_keys_only() {
    let cache = support::redis_cache("result_err").await;
    let db = Db::default();
    let keys = ["employee:1", "department:Support:employees", "inserts:eu"];
    plant(&cache, &keys).await;
    db.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        create(&cache, &db, "eu", "Support").await,
        Err("constraint violated".to_owned())
    );
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", true),
            ("department:Support:employees", true),
            ("inserts:eu", false)
        ]
    );
    // The same call succeeding renders them.
    create(&cache, &db, "eu", "Support")
        .await
        .expect("inserted");
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Support:employees", false),
            ("inserts:eu", false)
        ]
    );
}

/// `Option<T>`: `None` (an unknown id) deletes the argument key only; `Some` the result's
/// department too.
#[tokio::test]
async fn a_none_deletes_the_argument_keys_only() {
    let cache = support::redis_cache("result_none").await;
    let db = Db::default();
    let keys = ["employee:1", "department:Finance:employees"];
    plant(&cache, &keys).await;
    assert_eq!(transfer(&cache, &db, 1, "Finance").await, None);
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Finance:employees", true)
        ]
    );
    db.insert("Sales").expect("inserted");
    assert!(transfer(&cache, &db, 1, "Finance").await.is_some());
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Finance:employees", false)
        ]
    );
    let (list, outcome) = with_outcome(department(&cache, &db, "Finance")).await;
    assert_eq!((list, outcome), (vec![1], Some(Outcome::Miss)));
}

/// `Result<Option<T>, E>`: `Err` and `Ok(None)` delete the argument key only; `Ok(Some)`
/// the result's department too.
#[tokio::test]
async fn a_result_option_renders_only_from_ok_some() {
    let cache = support::redis_cache("result_ok_some").await;
    let db = Db::default();
    let keys = ["employee:1", "department:Finance:employees"];
    plant(&cache, &keys).await;
    db.fail.store(true, Ordering::SeqCst);
    assert_eq!(
        try_transfer(&cache, &db, 1, "Finance").await,
        Err("deadlock".to_owned())
    );
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Finance:employees", true)
        ]
    );
    plant(&cache, &keys).await;
    assert_eq!(try_transfer(&cache, &db, 1, "Finance").await, Ok(None));
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Finance:employees", true)
        ]
    );
    plant(&cache, &keys).await;
    db.insert("Sales").expect("inserted");
    assert!(matches!(
        try_transfer(&cache, &db, 1, "Finance").await,
        Ok(Some(_))
    ));
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Finance:employees", false)
        ]
    );
}

/// A whole value: `<return>` renders the value itself.
#[tokio::test]
async fn a_whole_result_renders_itself() {
    let cache = support::redis_cache("result_whole").await;
    let db = Db::default();
    assert_eq!(employee(&cache, &db, 1).await, None);
    assert_eq!(create_id(&cache, &db, "Sales").await, 1);
    assert_eq!(
        existing(&cache, &["employee:1"]).await,
        [("employee:1", false)]
    );
    let (row, outcome) = with_outcome(employee(&cache, &db, 1)).await;
    assert_eq!(
        (row.map(|row| row.id), outcome),
        (Some(1), Some(Outcome::Miss))
    );
}

/// `tags = [...]` may name the result too: the new row's department's tagged entries are
/// misses afterwards, another department's stay hits; an `Err` invalidates no tag.
#[tokio::test]
async fn tags_from_the_result_invalidate_their_entries() {
    let cache = support::redis_cache("result_tags").await;
    let db = Db::default();
    db.insert("Sales").expect("inserted");
    db.insert("Finance").expect("inserted");
    tagged(&cache, &db, "Sales", 1).await;
    tagged(&cache, &db, "Finance", 2).await;

    db.fail.store(true, Ordering::SeqCst);
    assert!(create_tagged(&cache, &db, "Sales").await.is_err());
    let (_, outcome) = with_outcome(tagged(&cache, &db, "Sales", 1)).await;
    assert_eq!(outcome, Some(Outcome::Hit), "an Err invalidates no tag");

    let created = create_tagged(&cache, &db, "Sales").await.expect("inserted");
    assert_eq!(created.id, 3);
    let (_, outcome) = with_outcome(tagged(&cache, &db, "Sales", 1)).await;
    assert_eq!(
        outcome,
        Some(Outcome::Miss),
        "the result's department's tag"
    );
    let (_, outcome) = with_outcome(tagged(&cache, &db, "Finance", 2)).await;
    assert_eq!(outcome, Some(Outcome::Hit), "another department's tag");
}

/// Keys from the arguments and from the result go in one `UNLINK`.
#[tokio::test]
async fn argument_and_result_keys_go_in_one_unlink() {
    let server = harness::RedisServer::start();
    let cache = Cache::connect(&server.url()).await.expect("connects");
    let db = Db::default();
    let mut admin = server.connection().await;
    let before = harness::command_calls_on(&mut admin).await;
    create(&cache, &db, "eu", "Support")
        .await
        .expect("inserted");
    let after = harness::command_calls_on(&mut admin).await;
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    assert_eq!((delta("unlink"), delta("del")), (1, 0), "{after:?}");
    let mut redis = server.connection().await;
    for key in ["employee:1", "department:Support:employees", "inserts:eu"] {
        let () = redis::cmd("SET")
            .arg(key)
            .arg("\"stale\"")
            .query_async(&mut redis)
            .await
            .expect("SET");
    }
    create(&cache, &db, "eu", "Support")
        .await
        .expect("inserted");
    let present: u64 = redis::cmd("EXISTS")
        .arg(&["employee:2", "department:Support:employees", "inserts:eu"])
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    assert_eq!(present, 0, "the one UNLINK held every key");
}

/// A caller dropped while the write runs: there is no result, but the argument keys are
/// deleted in the background all the same.
#[tokio::test]
async fn a_dropped_caller_still_deletes_the_argument_keys() {
    let cache = support::redis_cache("result_dropped").await;
    let gate = Arc::new(Notify::new());
    let db = Db {
        gate: Some(gate.clone()),
        ..Db::default()
    };
    let keys = ["employee:1", "inserts:eu"];
    plant(&cache, &keys).await;
    let write = create(&cache, &db, "eu", "Support");
    assert!(
        tokio::time::timeout(Duration::from_millis(50), write)
            .await
            .is_err(),
        "the write waits for the gate"
    );
    let argument_key = format!("{}inserts:eu", cache.prefix());
    eventually(
        Duration::from_secs(2),
        "the argument key deleted",
        || async { !raw_exists(&argument_key).await },
    )
    .await;
    assert!(raw_exists(&format!("{}employee:1", cache.prefix())).await);
    // With the gate open, the same write renders the result's keys.
    gate.notify_one();
    create(&cache, &db, "eu", "Support")
        .await
        .expect("inserted");
    assert_eq!(
        existing(&cache, &keys).await,
        [("employee:1", false), ("inserts:eu", false)]
    );
}

/// Inside `redis_cached::transaction`, the keys from the result are held with the others
/// until the commit.
#[tokio::test]
async fn inside_a_transaction_result_keys_wait_for_the_commit() {
    let cache = support::redis_cache("result_tx").await;
    let db = Db::default();
    let keys = ["employee:1", "department:Support:employees", "inserts:eu"];
    plant(&cache, &keys).await;
    let committed: Result<(), String> = transaction(async {
        create(&cache, &db, "eu", "Support").await?;
        assert_eq!(
            existing(&cache, &keys).await,
            [
                ("employee:1", true),
                ("department:Support:employees", true),
                ("inserts:eu", true)
            ],
            "held until the commit"
        );
        commit(async { Ok(()) }).await
    })
    .await;
    assert_eq!(committed, Ok(()));
    assert_eq!(
        existing(&cache, &keys).await,
        [
            ("employee:1", false),
            ("department:Support:employees", false),
            ("inserts:eu", false)
        ]
    );
}
