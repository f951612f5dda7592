use redis_cached::redis_cached;

struct Filter {
    active: bool,
}

#[redis_cached(key = "users:<filter>", ttl = 60)]
async fn list_users(filter: Filter) -> Vec<u64> {
    if filter.active { vec![1] } else { vec![] }
}

fn main() {
    let _ = list_users(Filter { active: true });
}
