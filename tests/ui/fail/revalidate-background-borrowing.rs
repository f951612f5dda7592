use redis_cached::redis_cached;

// A background refresh outlives the call: the body cannot borrow its arguments.
#[redis_cached(key = "user:<id>", ttl = 60, stale = "1m", revalidate = "background")]
async fn get_user(id: u64, name: &str) -> String {
    format!("{id} {name}")
}

fn main() {
    let _ = get_user(1, "x");
}
