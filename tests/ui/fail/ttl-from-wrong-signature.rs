use redis_cached::redis_cached;

fn ttl_of(user: &String) -> std::time::Duration {
    std::time::Duration::from_secs(user.len() as u64)
}

// The function takes the stored value (`u64` here), and returns a `Duration` or seconds.
#[redis_cached(key = "user:<id>", ttl = 60, ttl_from = ttl_of)]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get_user(1);
}
