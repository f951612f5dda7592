use redis_cached::redis_cached;
use std::collections::HashMap;

fn ttl_of(name: &String) -> u64 {
    name.len() as u64
}

// Run-time TTLs and the windows past the TTL are for functions of one id.
#[redis_cached(
    key = "employee:<ids>",
    batch = ids,
    ttl = std::time::Duration::from_secs(60),
    ttl_from = ttl_of,
    stale = "1m",
    stale_if_error = "1h",
    refresh_ahead
)]
async fn employees(ids: &[i64]) -> Result<HashMap<i64, String>, String> {
    Ok(ids.iter().map(|id| (*id, String::new())).collect())
}

fn main() {
    let _ = employees(&[1]);
}
