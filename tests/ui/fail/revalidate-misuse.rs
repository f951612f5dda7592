use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60, revalidate = "background")]
async fn without_window(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", ttl = 60, stale = "1m", revalidate = "later")]
async fn unknown_mode(id: u64) -> u64 {
    id
}

fn main() {
    let _ = without_window(1);
    let _ = unknown_mode(1);
}
