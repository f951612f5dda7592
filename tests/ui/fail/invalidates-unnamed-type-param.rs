use redis_cached::invalidates;

trait Table {}

#[invalidates("count:<id>", "counts:all")]
async fn clear<T: Table>(id: u64) {
    let _ = id;
}

fn main() {}
