use redis_cached::invalidates;

#[invalidates("employee:<ids>", each = employee_ids)]
async fn give_raises(ids: &[u64]) {
    let _ = ids;
}

fn main() {
    let _ = give_raises(&[1]);
}
