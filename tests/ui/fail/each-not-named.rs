use redis_cached::invalidates;

#[invalidates("employees:all", "payroll:<month>", each = ids)]
async fn give_raises(ids: &[u64], month: &str) {
    let _ = (ids, month);
}

fn main() {
    let _ = give_raises(&[1], "march");
}
