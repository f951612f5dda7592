use redis_cached::redis_cached;

trait Table {
    fn name() -> &'static str;
}

#[redis_cached(key = "count:<T.name>:<id>", ttl = 60)]
async fn count_rows<T: Table>(id: u64) -> u64 {
    T::name().len() as u64 + id
}

fn main() {}
