//! A type or const parameter that appears in the type of a rendered argument needs no name
//! of its own: the argument's rendering already tells the calls apart as far as it matters.
#![deny(warnings)]

use redis_cached::{KeyPart, invalidates, redis_cached};

#[redis_cached(key = "by-name:<name>")]
async fn by_name<S: AsRef<str> + KeyPart + Sync>(name: S) -> usize {
    name.as_ref().len()
}

struct Wrapper<S> {
    id: u64,
    inner: S,
}

#[redis_cached(key = "wrapped:<value.id>")]
async fn wrapped<S: Send>(value: Wrapper<S>) -> u64 {
    drop(value.inner);
    value.id
}

struct Page<const N: usize> {
    number: u32,
}

#[redis_cached(key = "page:<page.number>")]
async fn page<const N: usize>(page: Page<N>) -> u32 {
    page.number * N as u32
}

#[redis_cached(key = "borrowed:<key>")]
async fn borrowed<'a, K>(key: &'a K) -> bool
where
    K: KeyPart + Sync + ?Sized,
{
    let _ = key;
    true
}

#[invalidates("by-name:<name>")]
async fn forget<S: AsRef<str> + KeyPart + Sync>(name: S) {
    let _ = name.as_ref();
}

fn main() {
    let _ = by_name("a");
    let _ = wrapped(Wrapper { id: 1, inner: () });
    let _ = page(Page::<3> { number: 1 });
    let _ = borrowed("a");
    let _ = forget(String::new());
}
