//! Tags, on every topology (`scenario_tests!(tags, ..)`, part of `all`): a tag invalidates
//! every entry carrying it, and a tag invalidated while a body runs leaves that fill stale.
//! Redis-only checks (command counts, eviction, tag key TTLs, the near tier): `tags.rs`.

use redis_cached::{Cache, Outcome, invalidates, redis_cached, with_outcome};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The "database": every employee's name is `<name>-v<version>`, and a write bumps the
/// version, so a stale read is visible as an old version.
#[derive(Default)]
pub struct Db {
    pub version: AtomicU64,
    pub reads: AtomicU64,
}

impl Db {
    pub fn name(&self, id: u64) -> String {
        self.reads.fetch_add(1, Ordering::SeqCst);
        format!("employee {id} v{}", self.version.load(Ordering::SeqCst))
    }

    pub fn write(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }
}

#[redis_cached(key = "employee:<id>", ttl = 600, tags = ["department:<dept>", "employees"], cache = cache)]
pub async fn employee(cache: &Cache, db: &Db, dept: u32, id: u64) -> String {
    db.name(id)
}

#[invalidates(tags = ["department:<dept>"], cache = cache)]
pub async fn rename_department(cache: &Cache, db: &Db, dept: u32) {
    db.write();
}

pub async fn outcome(cache: &Cache, db: &Db, dept: u32, id: u64) -> (String, Option<Outcome>) {
    with_outcome(employee(cache, db, dept, id)).await
}

/// Entries of department 7 are misses after its tag is invalidated; department 8's stay hits.
pub async fn a_tag_invalidates_every_entry_carrying_it(cache: Cache) {
    let db = Db::default();
    for id in 1..=3 {
        employee(&cache, &db, 7, id).await;
    }
    employee(&cache, &db, 8, 4).await;
    for id in 1..=3 {
        assert_eq!(outcome(&cache, &db, 7, id).await.1, Some(Outcome::Hit));
    }
    rename_department(&cache, &db, 7).await;
    for id in 1..=3 {
        let (name, outcome) = outcome(&cache, &db, 7, id).await;
        assert_eq!(
            (name, outcome),
            (format!("employee {id} v1"), Some(Outcome::Miss))
        );
    }
    // Untouched: another department's entry still carries a current version.
    assert_eq!(
        outcome(&cache, &db, 8, 4).await,
        ("employee 4 v0".to_owned(), Some(Outcome::Hit))
    );
    // The shared tag invalidates them all, through the handle too.
    cache
        .invalidate_tags(&["employees"])
        .await
        .expect("invalidated");
    assert_eq!(outcome(&cache, &db, 8, 4).await.1, Some(Outcome::Miss));
    assert_eq!(outcome(&cache, &db, 7, 1).await.1, Some(Outcome::Miss));
}

#[redis_cached(key = "slow:<id>", ttl = 600, tags = ["department:<dept>"], cache = cache)]
async fn slow_employee(cache: &Cache, db: &Db, gate: &Notify, dept: u32, id: u64) -> String {
    let name = db.name(id);
    // The body has read the source; now the write and its invalidation happen.
    gate.notified().await;
    name
}

/// A tag invalidated while a body runs: the value it read before is returned to its caller,
/// but the entry it stores is stale on arrival, so the next call reads the source again.
pub async fn a_tag_invalidated_during_the_body_leaves_its_entry_stale(cache: Cache) {
    let db = Arc::new(Db::default());
    let gate = Arc::new(Notify::new());
    let filling = {
        let (cache, db, gate) = (cache.clone(), db.clone(), gate.clone());
        tokio::spawn(async move { slow_employee(&cache, &db, &gate, 7, 1).await })
    };
    crate::support::eventually(Duration::from_secs(2), "the body ran", || async {
        db.reads.load(Ordering::SeqCst) == 1
    })
    .await;
    rename_department(&cache, &db, 7).await;
    gate.notify_one();
    assert_eq!(filling.await.expect("joined"), "employee 1 v0");
    let open = Notify::new();
    open.notify_one();
    let (name, outcome) = with_outcome(slow_employee(&cache, &db, &open, 7, 1)).await;
    assert_eq!(
        (name, outcome),
        ("employee 1 v1".to_owned(), Some(Outcome::Miss))
    );
}
