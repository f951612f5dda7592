//! `key_ignores`: a type parameter, const parameter or `impl Trait` argument whose choice
//! does not change the result (a database executor) need not be in the key.
#![deny(warnings)]

use redis_cached::{invalidates, redis_cached};

/// Runs queries; which implementation runs them does not change their results.
trait Executor {
    fn name(&self, id: i64) -> String;
}

struct Pool;

impl Executor for Pool {
    fn name(&self, id: i64) -> String {
        format!("user {id}")
    }
}

impl Executor for &Pool {
    fn name(&self, id: i64) -> String {
        (*self).name(id)
    }
}

#[redis_cached(key = "user:<id>", ttl = 60, key_ignores = [E])]
async fn get_user<E: Executor>(db: E, id: i64) -> String {
    db.name(id)
}

#[invalidates("user:<id>", key_ignores = [E])]
async fn rename_user<E>(db: E, id: i64, name: &str) -> Result<(), String>
where
    E: Executor,
{
    let _ = (db.name(id), name);
    Ok(())
}

// An `impl Trait` argument is listed by its name.
#[redis_cached(key = "user-name:<id>", key_ignores = [db])]
async fn user_name(db: &impl Executor, id: i64) -> String {
    db.name(id)
}

#[invalidates("user-name:<id>", key_ignores = [db])]
async fn forget_user_name(db: impl Executor, id: i64) {
    let _ = db.name(id);
}

// Several at once, next to a type parameter the key names; a trailing comma is allowed.
#[redis_cached(key = "page:<T>:<id>", key_ignores = [E, N, db,])]
async fn page<T, E: Executor, const N: usize>(db: &impl Executor, executor: E, id: i64) -> u64 {
    let _ = (db.name(id), executor.name(id), N);
    std::mem::size_of::<T>() as u64
}

// With several keys, one may name `T` while another is shared by every `T`.
#[invalidates("count:<T>:<id>", "counts:all", key_ignores = [T])]
async fn clear_count<T>(id: i64) {
    let _ = id;
}

// The signature this is for: a sqlx executor, a pool or a connection or a transaction.
#[redis_cached(key = "sqlx-user:<id>", ttl = 60, key_ignores = [E])]
async fn sqlx_user<'c, E>(db: E, id: i64) -> Result<String, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
}

#[invalidates("sqlx-user:<id>", key_ignores = [E])]
async fn sqlx_rename<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(
    db: E,
    id: i64,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(db)
        .await
        .map(drop)
}

// Any executor: a pool, or a connection (as in a transaction); the futures stay `Send`.
async fn with_sqlx(
    pool: &sqlx::SqlitePool,
    connection: &mut sqlx::SqliteConnection,
) -> Result<(), sqlx::Error> {
    sqlx_user(pool, 1).await?;
    sqlx_user(&mut *connection, 1).await?;
    sqlx_rename(&mut *connection, 1, "Ada").await
}

fn send<T: Send>(_: T) {}

fn main() {
    let _ = get_user(Pool, 1);
    let _ = get_user(&Pool, 1);
    let _ = rename_user(Pool, 1, "Ada");
    let _ = user_name(&Pool, 1);
    let _ = forget_user_name(&Pool, 1);
    let _ = page::<u8, _, 3>(&Pool, Pool, 1);
    let _ = clear_count::<u8>(1);
    let _ = with_sqlx;
    let _ = |pool: sqlx::SqlitePool| send(async move { sqlx_user(&pool, 1).await });
}
