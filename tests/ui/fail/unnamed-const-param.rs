use redis_cached::redis_cached;

#[redis_cached(key = "repeat:<id>")]
async fn repeat<T: redis_cached::KeyPart + Sync, const N: usize>(id: T) -> usize {
    let _ = id;
    N
}

fn main() {}
