use redis_cached::redis_cached;
use std::collections::HashMap;

#[redis_cached(key = "employee:<ids>", ttl = 60, batch = ids)]
async fn employees(ids: &[i64]) -> Result<HashMap<i64, String>, String> {
    Ok(ids.iter().map(|id| (*id, format!("employee {id}"))).collect())
}

/// A `Vec` parameter, a plain map, another parameter in the key, a `mut` binding.
#[redis_cached(key = "tenant:<tenant>:name:<ids>", batch = ids)]
async fn names(tenant: &str, mut ids: Vec<u64>) -> HashMap<u64, String> {
    ids.sort_unstable();
    ids.into_iter().map(|id| (id, format!("{tenant} {id}"))).collect()
}

fn main() {
    let _ = employees(&[1, 2]);
    let _ = names("acme", vec![1, 2]);
}
