use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(key = "employees:<tenant>", batch = ids)]
async fn employees(tenant: &str, ids: &[i64]) -> HashMap<i64, String> {
    ids.iter().map(|id| (*id, tenant.to_owned())).collect()
}

fn main() {
    let _ = employees("acme", &[1]);
}
