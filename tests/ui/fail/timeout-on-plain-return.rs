use redis_cached::redis_cached;

#[redis_cached(key = "report:<id>", ttl = 60, timeout = "2s")]
async fn report(id: u64) -> String {
    format!("report {id}")
}

#[redis_cached(key = "summary:<id>", ttl = 60, timeout = "0ms")]
async fn summary(id: u64) -> Result<String, redis_cached::TimedOut> {
    Ok(format!("summary {id}"))
}

fn main() {}
