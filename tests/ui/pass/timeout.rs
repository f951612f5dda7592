use redis_cached::{TimedOut, redis_cached};

#[derive(Debug)]
enum DbError {
    TimedOut,
}

impl From<TimedOut> for DbError {
    fn from(_: TimedOut) -> Self {
        DbError::TimedOut
    }
}

#[redis_cached(key = "report:<id>", ttl = 60, timeout = "1500ms")]
async fn report(id: u64) -> Result<Option<String>, DbError> {
    Ok(Some(format!("report {id}")))
}

// Boxed errors hold `TimedOut` as they hold any error.
#[redis_cached(key = "summary:<id>", ttl = 60, timeout = 2)]
async fn summary(id: u64) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(format!("summary {id}"))
}

fn main() {
    let _ = (report(1), summary(1));
}
