//! Invalidation after commit, against a real redis-server and a real SQLite database (WAL,
//! through sqlx): an invalidation made inside a transaction deletes the entry before the
//! commit, so a reader in between caches the old row for the whole TTL, unless the
//! invalidation runs inside `redis_cached::transaction` and waits for `commit`.

mod harness;
mod support;

use redis_cached::{Cache, Outcome, commit, invalidates, redis_cached, transaction, with_outcome};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};
use std::time::Duration;
use support::{eventually, raw_exists};

#[redis_cached(key = "user:<id>", ttl = 600, cache = cache)]
async fn user_name(cache: &Cache, db: &SqlitePool, id: i64) -> Result<String, String> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .map_err(|error| error.to_string())
}

#[invalidates("user:<id>", cache = cache)]
async fn rename(
    cache: &Cache,
    tx: &mut Transaction<'_, Sqlite>,
    id: i64,
    name: &str,
) -> Result<(), String> {
    sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// A fresh database file with one user, `1: "old"`; readers see only committed rows.
async fn database() -> (SqlitePool, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("users.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let db = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("sqlite opens");
    sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL); INSERT INTO users VALUES (1, 'old');")
        .execute(&db)
        .await
        .expect("schema");
    (db, dir)
}

/// A temporary directory removed on drop (no crate needed for one directory).
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!(
                "redis-cached-tx-{}-{}",
                std::process::id(),
                crate::support::unique_prefix("dir").trim_end_matches(':')
            ));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The race, step by step: the write invalidates inside its transaction, a reader runs
/// before the commit and sees the old (committed) row, then the transaction commits.
/// Returns what a reader gets after the commit.
async fn race(cache: &Cache, db: &SqlitePool, scoped: bool) -> (String, Option<Outcome>) {
    let write = async {
        let mut tx = db.begin().await.map_err(|error| error.to_string())?;
        rename(cache, &mut tx, 1, "new").await?;
        // A reader between the invalidation and the commit.
        assert_eq!(user_name(cache, db, 1).await, Ok("old".to_owned()));
        commit(async { tx.commit().await.map_err(|error| error.to_string()) }).await
    };
    let written = if scoped {
        transaction(write).await
    } else {
        write.await
    };
    assert_eq!(written, Ok(()));
    let (name, outcome) = with_outcome(user_name(cache, db, 1)).await;
    (name.expect("the row is there"), outcome)
}

#[tokio::test]
async fn a_reader_between_invalidation_and_commit_caches_the_old_row_without_a_scope() {
    let (db, _dir) = database().await;
    let cache = support::redis_cache("tx_unscoped").await;
    let (name, outcome) = race(&cache, &db, false).await;
    // The stale read this feature exists to prevent: it would last the whole TTL.
    assert_eq!(name, "old");
    assert_eq!(outcome, Some(Outcome::Hit));
}

#[tokio::test]
async fn inside_a_transaction_scope_the_invalidation_waits_for_the_commit() {
    let (db, _dir) = database().await;
    let cache = support::redis_cache("tx_scoped").await;
    let (name, outcome) = race(&cache, &db, true).await;
    assert_eq!(name, "new");
    assert_eq!(outcome, Some(Outcome::Miss));
}

#[tokio::test]
async fn a_rolled_back_scope_discards_its_invalidations() {
    let (db, _dir) = database().await;
    let cache = support::redis_cache("tx_rollback").await;
    assert_eq!(user_name(&cache, &db, 1).await, Ok("old".to_owned()));
    let rolled_back: Result<(), String> = transaction(async {
        let mut tx = db.begin().await.map_err(|error| error.to_string())?;
        rename(&cache, &mut tx, 1, "new").await?;
        tx.rollback().await.map_err(|error| error.to_string())?;
        Err("validation failed".to_owned())
    })
    .await;
    assert!(rolled_back.is_err());
    // The row never changed: its entry is still good, and still served.
    let (name, outcome) = with_outcome(user_name(&cache, &db, 1)).await;
    assert_eq!((name, outcome), (Ok("old".to_owned()), Some(Outcome::Hit)));
}

#[tokio::test]
async fn a_failed_commit_still_invalidates_since_its_outcome_is_unknown() {
    let cache = support::redis_cache("tx_commit_failed").await;
    let key = format!("{}user:1", cache.prefix());
    support::raw_set(&key, b"\"old\"").await;
    let result: Result<(), &str> = transaction(async {
        cache.invalidate(&["user:1"]).await.map_err(|_| "cache")?;
        assert!(raw_exists(&key).await, "held until the commit");
        commit(async { Err("connection lost during COMMIT") }).await
    })
    .await;
    assert_eq!(result, Err("connection lost during COMMIT"));
    assert!(!raw_exists(&key).await, "deleted when the scope ended");
}

#[tokio::test]
async fn a_scope_dropped_during_its_commit_invalidates_in_the_background() {
    let cache = support::redis_cache("tx_dropped").await;
    let key = format!("{}user:1", cache.prefix());
    support::raw_set(&key, b"\"old\"").await;
    let scope = transaction(async {
        cache.invalidate(&["user:1"]).await.map_err(|_| "cache")?;
        commit(std::future::pending::<Result<(), &str>>()).await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(50), scope)
            .await
            .is_err(),
        "the commit never returns"
    );
    eventually(Duration::from_secs(2), "the held key deleted", || async {
        !raw_exists(&key).await
    })
    .await;
}

#[tokio::test]
async fn invalidations_after_the_commit_run_at_once() {
    let cache = support::redis_cache("tx_after_commit").await;
    let key = format!("{}user:1", cache.prefix());
    transaction(async {
        commit(async { Ok::<_, ()>(()) }).await?;
        support::raw_set(&key, b"\"old\"").await;
        cache.invalidate(&["user:1"]).await.map_err(|_| ())?;
        assert!(!raw_exists(&key).await, "deleted before the scope ended");
        Ok::<_, ()>(())
    })
    .await
    .expect("scope");
}

#[tokio::test]
async fn after_commit_returns_the_scope_reads_its_own_write() {
    let (db, _dir) = database().await;
    let cache = support::redis_cache("tx_read_back").await;
    assert_eq!(user_name(&cache, &db, 1).await, Ok("old".to_owned()));
    let read_back = transaction(async {
        let mut tx = db.begin().await.map_err(|error| error.to_string())?;
        rename(&cache, &mut tx, 1, "new").await?;
        commit(async { tx.commit().await.map_err(|error| error.to_string()) }).await?;
        Ok::<_, String>(with_outcome(user_name(&cache, &db, 1)).await)
    })
    .await;
    assert_eq!(
        read_back,
        Ok((Ok("new".to_owned()), Some(Outcome::Miss))),
        "the held key is deleted when commit returns, not when the scope ends"
    );
}
