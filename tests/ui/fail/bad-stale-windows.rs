use redis_cached::redis_cached;

// Every mistake in the windows at once: a zero window, a window without units, a beta
// that is not positive.
#[redis_cached(key = "user:<id>", ttl = 60, stale = 0, stale_if_error = "1 hour", refresh_ahead = -1.0)]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    let _ = get_user(1);
}
