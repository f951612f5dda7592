use redis_cached::invalidates;

#[invalidates(cache = redis_cached::installed().unwrap())]
async fn delete_user(id: u64) {
    let _ = id;
}

fn main() {
    let _ = delete_user(1);
}
