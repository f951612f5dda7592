//! An `impl Trait` argument that the key renders needs no name: its value tells the calls
//! apart.
#![deny(warnings)]

use redis_cached::{KeyPart, invalidates, redis_cached};

#[redis_cached(key = "ref:<id>")]
async fn by_ref(id: &(impl KeyPart + Sync + ?Sized)) -> u64 {
    let _ = id;
    1
}

#[redis_cached(key = "boxed:<id>")]
async fn boxed(id: Box<impl KeyPart + Send>) -> u64 {
    let _ = id;
    2
}

#[invalidates("ref:<id>")]
async fn forget(id: impl KeyPart + Send) {
    let _ = id;
}

fn main() {
    let _ = by_ref("a");
    let _ = boxed(Box::new(1u8));
    let _ = forget(1u8);
}
