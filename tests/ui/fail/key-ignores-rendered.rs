use redis_cached::{invalidates, redis_cached};

trait Executor {}

// Named in the key: the list would say the key ignores what it renders.
#[redis_cached(key = "count:<T>:<id>", key_ignores = [T])]
async fn count_rows<T>(id: u64) -> u64 {
    id
}

// In the type of a rendered argument.
#[redis_cached(key = "name:<name>", key_ignores = [S])]
async fn greet<S: AsRef<str> + redis_cached::KeyPart + Sync>(name: S) -> String {
    name.as_ref().to_owned()
}

// A rendered `impl Trait` argument.
#[invalidates("name:<name>", key_ignores = [name])]
async fn forget(name: impl redis_cached::KeyPart) {
    let _ = name;
}

// In every key of an invalidation.
#[invalidates("count:<T>:<id>", "counts:<T>", key_ignores = [E, T])]
async fn clear<T, E: Executor>(db: E, id: u64) {
    let _ = (db, id);
}

fn main() {}
