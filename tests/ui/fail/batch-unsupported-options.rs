use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(
    key = "employee:<ids>",
    batch = ids,
    tags = ["employees"],
    near_cache = true,
    refresh = false,
    cache_none = true
)]
async fn employees(ids: &[i64]) -> HashMap<i64, String> {
    ids.iter().map(|id| (*id, String::new())).collect()
}

fn main() {
    let _ = employees(&[1]);
}
