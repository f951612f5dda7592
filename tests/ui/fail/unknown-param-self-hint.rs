use redis_cached::redis_cached;

struct Repo {
    tenant: u64,
}

impl Repo {
    #[redis_cached(key = "user:<tenant>:<id>", ttl = 60)]
    async fn get_user(&self, id: u64) -> u64 {
        self.tenant + id
    }
}

fn main() {}
