use redis_cached::redis_cached;

trait Repo {
    #[redis_cached(key = "user:<id>", ttl = 60)]
    async fn get(&self, id: u64) -> u64;
}

struct Postgres;

impl Repo for Postgres {
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
