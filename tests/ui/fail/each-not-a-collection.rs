use redis_cached::invalidates;
use std::collections::HashSet;

#[invalidates("employee:<id>", each = id)]
async fn give_raise(id: u64) {
    let _ = id;
}

#[invalidates("employee:<ids>", each = ids)]
async fn give_raises(ids: HashSet<u64>) {
    let _ = ids;
}

fn main() {
    let _ = (give_raise(1), give_raises(HashSet::new()));
}
