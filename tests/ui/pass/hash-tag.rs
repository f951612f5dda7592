//! Hash tags `#{...}` in both attributes: around literal text and placeholders (fields,
//! `self`, type and const parameters), at the start, the middle or the end of a template.
#![deny(warnings)]

use redis_cached::{Cache, invalidates, redis_cached};

struct Account {
    tenant: u32,
}

struct Repo {
    cache: Cache,
    tenant: String,
}

#[redis_cached(key = "#{tenant:<tenant>}:user:<id>", ttl = 60)]
async fn user(tenant: u32, id: u64) -> String {
    format!("{tenant}:{id}")
}

#[redis_cached(key = "users:#{<account.tenant>}:count", ttl = 60)]
async fn count(account: &Account) -> u64 {
    u64::from(account.tenant)
}

#[redis_cached(key = "rows:<id>:#{<T>:<N>}", ttl = 60)]
async fn rows<T, const N: usize>(id: u64) -> u64 {
    id + N as u64
}

#[invalidates("#{tenant:<tenant>}:user:<id>", "users:#{<tenant>}:count")]
async fn rename(tenant: u32, id: u64, name: &str) -> Result<(), String> {
    let _ = (tenant, id, name);
    Ok(())
}

impl Repo {
    #[redis_cached(key = "#{<self.tenant>}:order:<id>", ttl = 60, cache = &self.cache)]
    async fn order(&self, id: u64) -> u64 {
        id
    }

    #[invalidates("#{<self.tenant>}:order:<id>", cache = &self.cache)]
    async fn cancel(&self, id: u64) {
        let _ = id;
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(user(1, 2));
    assert_send(count(&Account { tenant: 1 }));
    assert_send(rows::<String, 3>(1));
    assert_send(rename(1, 2, "a"));
    let _ = |repo: &Repo| assert_send(repo.order(1));
    let _ = |repo: &Repo| assert_send(repo.cancel(1));
}
