use redis_cached::redis_cached;

trait Table {
    const NAME: &'static str;
}

#[redis_cached(key = "count:<id>", ttl = 60)]
async fn count_rows<T: Table>(id: u64) -> u64 {
    T::NAME.len() as u64 + id
}

fn main() {}
