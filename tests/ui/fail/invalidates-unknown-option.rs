use redis_cached::invalidates;

#[invalidates("user:<id>", ttl = 60)]
async fn delete_user(id: u64) {
    let _ = id;
}

fn main() {
    let _ = delete_user(1);
}
