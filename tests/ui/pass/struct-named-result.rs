use redis_cached::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SearchResult {
    ids: Vec<u64>,
}

#[redis_cached(key = "search:<query>", ttl = 60)]
async fn search(query: &str) -> SearchResult {
    SearchResult {
        ids: vec![query.len() as u64],
    }
}

fn main() {
    let _ = search("a");
}
