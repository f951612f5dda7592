//! Borrowed parameters, with named and elided lifetimes.
#![deny(warnings)]

use redis_cached::redis_cached;

#[redis_cached(key = "named:<name>")]
async fn named<'a>(name: &'a str) -> usize {
    name.len()
}

#[redis_cached(key = "elided:<name>:<tags>")]
async fn elided(name: &str, tags: &String) -> String {
    format!("{name}{tags}")
}

#[redis_cached(key = "two:<a>:<b>")]
async fn two<'a, 'b: 'a>(a: &'a str, b: &'b str) -> Result<u64, String> {
    Ok((a.len() + b.len()) as u64)
}

struct Borrowing<'a> {
    name: &'a str,
}

#[redis_cached(key = "field:<value.name>")]
async fn field(value: Borrowing<'_>) -> usize {
    value.name.len()
}

#[redis_cached(key = "static:<name>")]
async fn static_str(name: &'static str) -> String {
    name.to_owned()
}

fn main() {
    let owned = String::from("x");
    let _ = named(&owned);
    let _ = elided(&owned, &owned);
    let _ = two(&owned, "y");
    let _ = field(Borrowing { name: &owned });
    let _ = static_str("z");
}
