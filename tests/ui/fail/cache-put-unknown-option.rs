use redis_cached::cache_put;

// `refresh` reads; a put always writes.
#[cache_put("user:<id>", refresh = true)]
async fn rename(id: u64) -> u64 {
    id
}

fn main() {
    let _ = rename(1);
}
