//! Every bad key of an invalidator is reported, not only the first.

use redis_cached::invalidates;

#[invalidates("user:<user_id>", "users:{id}")]
async fn rename_user(id: u64) {
    let _ = id;
}

fn main() {
    let _ = rename_user(1);
}
