//! `self: Arc<Self>` methods: the future owns the receiver, so it is `Send + 'static`.
#![deny(warnings)]

use redis_cached::{Cache, redis_cached};
use std::sync::Arc;

struct Service {
    cache: Cache,
    name: String,
}

impl Service {
    #[redis_cached(key = "service:<self.name>:<id>", cache = self.cache.clone(), ttl = 10)]
    async fn get(self: Arc<Self>, id: u64) -> Result<String, String> {
        Ok(format!("{}:{id}", self.name))
    }

    #[redis_cached(key = "service-ref:<self.name>", cache = &self.cache)]
    async fn get_ref(self: &Arc<Self>) -> usize {
        self.name.len()
    }
}

fn assert_send_static<T: Send + 'static>(_: T) {}

fn main() {
    let _ = |service: Arc<Service>| {
        let _ = service.get_ref();
        assert_send_static(service.get(1));
    };
}
