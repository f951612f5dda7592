use redis_cached::redis_cached;

struct Filter {
    active: bool,
    tags: Vec<String>,
}

#[redis_cached(key = "users:<filter.active>:<filter.tags>", ttl = 60)]
async fn list_users(filter: Filter) -> Vec<String> {
    if filter.active { filter.tags } else { vec![] }
}

fn main() {
    let _ = list_users(Filter {
        active: true,
        tags: vec![],
    });
}
