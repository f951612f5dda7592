//! `?` and `return` in the body return from the function as written.
#![deny(warnings)]

use redis_cached::redis_cached;
use std::num::ParseIntError;

#[redis_cached(key = "parse:<text>")]
async fn parse(text: &str) -> Result<u64, ParseIntError> {
    let value: u64 = text.trim().parse()?;
    if value == 0 {
        return Ok(1);
    }
    Ok(value * 2)
}

#[redis_cached(key = "parse-boxed:<text>")]
async fn parse_boxed(text: String) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let value: u64 = text.parse()?;
    let small: u8 = u8::try_from(value)?;
    Ok(u64::from(small))
}

#[redis_cached(key = "first:<id>")]
async fn first_even(id: u64, items: Vec<u64>) -> Option<u64> {
    let first = items.first()?;
    let _ = id;
    for item in &items {
        if item % 2 == 0 {
            return Some(*item);
        }
    }
    Some(*first)
}

#[redis_cached(key = "plain:<id>")]
async fn plain(id: u64) -> u64 {
    if id == 0 {
        return 0;
    }
    let inner = async { id * 2 }.await;
    inner
}

fn main() {
    let _ = parse("1");
    let _ = parse_boxed("1".to_owned());
    let _ = first_even(1, vec![1]);
    let _ = plain(1);
}
