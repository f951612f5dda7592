use redis_cached::redis_cached;

struct Repo;

impl Repo {
    #[redis_cached(key = "repo:<self.shard>:<id>", ttl = 60)]
    async fn get(id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = Repo::get(1);
}
