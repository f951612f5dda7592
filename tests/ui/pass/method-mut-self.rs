//! `&mut self` methods: the body may mutate `self` after the key was rendered from it.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};

struct Counter {
    cache: Cache,
    name: String,
    calls: u64,
}

impl Counter {
    #[redis_cached(key = "counter:<self.name>:<step>", cache = self.cache.clone())]
    async fn bump(&mut self, step: u64) -> u64 {
        self.calls += step;
        self.calls
    }

    #[redis_cached(key = "rename:<self.name>", cache = &self.cache, ttl = "1m")]
    async fn rename(&mut self, name: String) -> Result<String, std::fmt::Error> {
        let old = std::mem::replace(&mut self.name, name);
        Ok(old)
    }
}

fn main() {
    let _ = |counter: &mut Counter| {
        let _ = counter.bump(1);
    };
    let _ = |counter: &mut Counter| {
        let _ = counter.rename("b".to_owned());
    };
}
