use redis_cached::redis_cached;

#[redis_cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Result<u64, String> {
    if id == 0 {
        return Err(std::io::Error::other("zero"));
    }
    Ok(id)
}

fn main() {
    let _ = get_user(1);
}
