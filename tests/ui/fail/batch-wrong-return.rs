use redis_cached::redis_cached;

#[redis_cached(key = "employee:<ids>", batch = ids)]
async fn employees(ids: &[i64]) -> Result<Vec<String>, String> {
    Ok(ids.iter().map(|id| id.to_string()).collect())
}

fn main() {
    let _ = employees(&[1]);
}
