//! `impl Trait` parameters.
#![deny(warnings)]

use redis_cached::redis_cached;

#[redis_cached(key = "impl:<id>")]
async fn by_impl(id: impl redis_cached::KeyPart) -> u64 {
    let _ = id;
    1
}

#[redis_cached(key = "impl-send:<id>:<name>")]
async fn by_impl_send(
    id: impl redis_cached::KeyPart + Send,
    name: impl AsRef<str> + redis_cached::KeyPart,
) -> String {
    let _ = id;
    name.as_ref().to_owned()
}

fn main() {
    let _ = by_impl(1u8);
    let _ = by_impl(String::new());
    let _ = by_impl_send(true, "name");
}
