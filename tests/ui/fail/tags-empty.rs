use redis_cached::redis_cached;

#[redis_cached(key = "employee:<id>", tags = [])]
async fn employee(id: u64) -> String {
    id.to_string()
}

fn main() {
    let _ = employee(1);
}
