use redis_cached::{invalidates, redis_cached};

trait Executor {}
trait Table {}

// A typo, the argument instead of its type parameter, an argument of a concrete type: only
// parameters may be listed (so `E` is not ignored either).
#[redis_cached(key = "user:<T>:<id>", ttl = 60, key_ignores = [Ex, db, id])]
async fn get_user<E: Executor, T: Table>(db: E, id: i64) -> u64 {
    let _ = db;
    id as u64
}

#[invalidates("user:<id>", key_ignores = [E])]
async fn rename_user(id: i64) {
    let _ = id;
}

#[redis_cached(key = "count:<id>", key_ignores = [M])]
async fn count<const N: usize>(db: &impl Executor, id: i64) -> u64 {
    let _ = db;
    id as u64 + N as u64
}

fn main() {}
