use redis_cached::redis_cached;

#[derive(Debug)]
struct DbError;

#[redis_cached(key = "report:<id>", ttl = 60, timeout = "2s")]
async fn report(id: u64) -> Result<String, DbError> {
    Ok(format!("report {id}"))
}

fn main() {}
