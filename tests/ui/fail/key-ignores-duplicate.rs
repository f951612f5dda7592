use redis_cached::{invalidates, redis_cached};

trait Executor {}

#[redis_cached(key = "user:<id>", key_ignores = [E], ttl = 60, key_ignores = [E])]
async fn get_user<E: Executor>(db: E, id: u64) -> u64 {
    let _ = db;
    id
}

#[invalidates("user:<id>", key_ignores = [E, E])]
async fn rename_user<E: Executor>(db: E, id: u64) {
    let _ = (db, id);
}

fn main() {}
