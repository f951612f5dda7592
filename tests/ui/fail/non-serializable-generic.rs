use redis_cached::redis_cached;
use serde::Serialize;

#[redis_cached(key = "value:<T>:<id>")]
async fn value<T: Serialize + Default>(id: u64) -> Option<T> {
    let _ = id;
    Some(T::default())
}

fn main() {
    let _ = value::<u64>(1);
}
