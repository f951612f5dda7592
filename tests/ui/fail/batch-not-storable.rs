use redis_cached::redis_cached;
use std::collections::HashMap;

struct Employee;

#[redis_cached(key = "employee:<ids>", batch = ids)]
async fn employees(ids: &[i64]) -> HashMap<i64, Employee> {
    ids.iter().map(|id| (*id, Employee)).collect()
}

fn main() {
    let _ = employees(&[1]);
}
