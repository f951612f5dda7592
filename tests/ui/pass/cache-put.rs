//! `#[cache_put]` on every stored shape, with options, on methods and generic functions; the
//! future is `Send`.
#![deny(warnings)]

use redis_cached::{Cache, cache_put};
use std::time::Duration;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    department: u32,
}

struct Users {
    cache: Cache,
    tenant: u32,
}

#[cache_put("user:<id>")]
async fn whole(id: u64) -> User {
    User { id, department: 1 }
}

#[cache_put("user:<id>", "users:latest", ttl = "1h", version = 2)]
async fn result(id: u64, name: String) -> Result<User, std::io::Error> {
    let _ = name;
    Ok(User { id, department: 1 })
}

#[cache_put("user:<id>", cache_none = true, ttl = Duration::from_secs(60))]
async fn option(id: u64) -> Option<User> {
    Some(User { id, department: 1 })
}

#[cache_put("user:<id>", tags = ["department:<department>"], stale = "1m", stale_if_error = "1h")]
async fn result_option(id: u64, department: u32) -> Result<Option<User>, String> {
    Ok(Some(User { id, department }))
}

#[cache_put("value:<T>:<id>", key_ignores = [E])]
async fn generic<T: serde::Serialize + serde::de::DeserializeOwned + Default, E>(
    id: u64,
) -> Result<T, E> {
    let _ = id;
    Ok(T::default())
}

impl Users {
    #[cache_put("tenant:<self.tenant>:user:<id>", cache = &self.cache)]
    async fn save(&self, id: u64) -> User {
        User { id, department: self.tenant }
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(whole(1));
    assert_send(result(1, String::new()));
    assert_send(option(1));
    assert_send(result_option(1, 2));
    assert_send(generic::<u64, String>(1));
}

#[allow(dead_code)]
fn methods(users: &Users) {
    assert_send(users.save(1));
}
