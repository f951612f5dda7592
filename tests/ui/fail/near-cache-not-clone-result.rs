use redis_cached::redis_cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Report {
    rows: Vec<u64>,
}

#[redis_cached(key = "report:<id>", ttl = 60, near_cache = true)]
async fn report(id: u64) -> Result<Report, String> {
    Ok(Report { rows: vec![id] })
}

fn main() {}
