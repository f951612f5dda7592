use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60, version = 0)]
async fn zero(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", ttl = 60, version = "2")]
async fn text(id: u64) -> u64 {
    id
}

#[redis_cached(key = "user:<id>", ttl = 60, version = 4294967296)]
async fn too_large(id: u64) -> u64 {
    id
}

fn main() {
    let _ = (zero(1), text(1), too_large(1));
}
