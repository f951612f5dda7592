use redis_cached::redis_cached;

// A `#[redis_cached]` key (and tag) is rendered before the body, to look the entry up: the
// result is not known yet.
#[redis_cached(key = "user:<return.id>", tags = ["team:<return>"])]
async fn user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = user(1);
}
