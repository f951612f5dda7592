use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(key = "employee:<id>", batch = id)]
async fn employees(id: i64) -> HashMap<i64, String> {
    HashMap::from([(id, String::new())])
}

fn main() {
    let _ = employees(1);
}
