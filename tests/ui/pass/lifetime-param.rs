//! Lifetime parameters need no name in the key, even when no rendered argument has them:
//! they cannot change the result.
#![deny(warnings)]

use redis_cached::{invalidates, redis_cached};

struct Db;

impl Db {
    fn count(&self, id: u64) -> u64 {
        id
    }
}

#[redis_cached(key = "count:<id>", ttl = 60)]
async fn count<'a>(db: &'a Db, id: u64) -> u64 {
    db.count(id)
}

#[invalidates("count:<id>")]
async fn clear<'a, 'b: 'a>(db: &'a Db, reason: &'b str, id: u64) {
    let _ = (db.count(id), reason);
}

fn main() {
    let _ = count(&Db, 1);
    let _ = clear(&Db, "r", 1);
}
