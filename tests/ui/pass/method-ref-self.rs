//! `&self` methods: `<self.field>` in the key and `cache = &self.cache`.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};

struct Tenant {
    id: u32,
    region: String,
}

struct Repo {
    cache: Cache,
    tenant: Tenant,
    shard: u8,
}

impl Repo {
    #[redis_cached(key = "repo:<self.shard>:user:<id>", cache = &self.cache, ttl = 60)]
    async fn get(&self, id: u64) -> Option<String> {
        Some(format!("{}:{id}", self.shard))
    }

    #[redis_cached(key = "tenant:<self.tenant.id>:<self.tenant.region>:<name>", cache = &self.cache)]
    async fn by_name(&self, name: &str) -> Result<u64, String> {
        Ok(name.len() as u64 + u64::from(self.tenant.id))
    }

    /// No `cache = ...`: the process-wide cache, while the key still reads `self`.
    #[redis_cached(key = "count:<self.shard>")]
    async fn count(&self) -> usize {
        self.tenant.region.len()
    }
}

fn main() {
    let _ = |repo: &Repo| {
        let _ = repo.get(1);
        let _ = repo.by_name("x");
        let _ = repo.count();
    };
}
