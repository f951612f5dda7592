//! A method of a trait impl, for a trait declaring `async fn`.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};

trait Repo {
    async fn get(&self, id: u64) -> Result<Option<String>, String>;
    async fn count(&self) -> u64;
}

struct Postgres {
    cache: Cache,
}

impl Repo for Postgres {
    #[redis_cached(key = "pg:user:<id>", cache = &self.cache, cache_none = true)]
    async fn get(&self, id: u64) -> Result<Option<String>, String> {
        Ok(Some(id.to_string()))
    }

    #[redis_cached(key = "pg:count", ttl = 5)]
    async fn count(&self) -> u64 {
        0
    }
}

async fn use_repo(repo: &impl Repo) -> u64 {
    let _ = repo.get(1).await;
    repo.count().await
}

fn main() {
    let _ = |pg: &Postgres| {
        let _ = use_repo(pg);
    };
}
