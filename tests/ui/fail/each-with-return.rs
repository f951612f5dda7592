use redis_cached::invalidates;

struct Team {
    id: u64,
}

#[invalidates("team:<return.id>:employee:<ids>", each = ids)]
async fn move_employees(ids: &[u64]) -> Team {
    let _ = ids;
    Team { id: 1 }
}

fn main() {
    let _ = move_employees(&[1]);
}
