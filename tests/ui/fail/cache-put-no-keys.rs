use redis_cached::cache_put;

#[cache_put(ttl = 60)]
async fn rename(id: u64) -> u64 {
    id
}

fn main() {
    let _ = rename(1);
}
