//! `#[invalidates]` with one or several keys, the global cache or `cache = ...`.
#![deny(warnings)]

use redis_cached::{Cache, invalidates, redis_cached};

struct Users {
    cache: Cache,
    tenant: u32,
}

#[redis_cached(key = "user:<id>")]
async fn get_user(id: u64) -> Option<String> {
    Some(id.to_string())
}

#[invalidates("user:<id>")]
async fn rename(id: u64, name: String) -> Result<(), String> {
    let _ = (id, name);
    Ok(())
}

#[invalidates("user:<id>", "users:all", "users:by-name:<name>")]
async fn delete(id: u64, name: &str) -> Result<u64, std::io::Error> {
    Ok(id + name.len() as u64)
}

#[invalidates("users:all", cache = cache)]
async fn clear(cache: &Cache) {}

#[invalidates("users:all", "users:count", cache = cache.clone(),)]
async fn clear_owned(cache: Cache) -> usize {
    drop(cache);
    0
}

impl Users {
    #[invalidates("tenant:<self.tenant>:user:<id>", "tenant:<self.tenant>:users", cache = &self.cache)]
    async fn remove(&mut self, id: u64) -> bool {
        id > 0
    }

    #[invalidates("tenant:<self.tenant>:users", cache = self.cache.clone())]
    async fn touch(&self) {}
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let _ = get_user(1);
    assert_send(rename(1, String::new()));
    assert_send(delete(1, "a"));
    let _ = |cache: &Cache| assert_send(clear(cache));
    let _ = |cache: Cache| assert_send(clear_owned(cache));
    let _ = |users: &mut Users| assert_send(users.remove(1));
    let _ = |users: &Users| assert_send(users.touch());
}
