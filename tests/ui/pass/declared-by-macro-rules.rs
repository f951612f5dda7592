//! Cached functions and invalidations declared by `macro_rules!` macros, the return type one
//! of the macro's arguments (a `ty` fragment, or plain tokens): the generated locals resolve
//! whatever the return type's tokens' expansion.
use redis_cached::{invalidates, redis_cached};
use std::collections::HashMap;

macro_rules! cached {
    ($name:ident, $ret:ty, $value:expr) => {
        #[redis_cached(key = "typed:<id>", ttl = 60)]
        async fn $name(id: u64) -> $ret {
            let _ = id;
            $value
        }
    };
}

macro_rules! cached_tokens {
    ($name:ident, $value:expr, $($ret:tt)+) => {
        #[redis_cached(key = "tokens:<id>", ttl = 60)]
        async fn $name(id: u64) -> $($ret)+ {
            let _ = id;
            $value
        }
    };
}

/// The key template and the parameter from the invocation, the body's tokens from the macro.
macro_rules! keyed {
    ($name:ident, $key:literal, $param:ident: $ty:ty) => {
        #[redis_cached(key = $key, ttl = 60)]
        async fn $name($param: $ty) -> Option<$ty> {
            Some($param)
        }
    };
}

/// A batch function, its ids' and its map's types from the invocation.
macro_rules! batch_of {
    ($name:ident, $ids:ty, $map:ty) => {
        #[redis_cached(key = "batch:<ids>", ttl = 60, batch = ids)]
        async fn $name(ids: $ids) -> $map {
            ids.iter().map(|&id| (id, id)).collect()
        }
    };
}

macro_rules! invalidating {
    ($name:ident, $ret:ty, $value:expr) => {
        #[invalidates("typed:<id>")]
        async fn $name(id: u64) -> $ret {
            let _ = id;
            $value
        }
    };
}

cached!(whole, u64, 1);
cached!(some, Option<u64>, None);
cached!(ok, Result<u64, String>, Ok(1));
cached!(ok_some, Result<Option<u64>, String>, Ok(None));
cached_tokens!(some_tokens, Some(1), Option<u64>);
cached_tokens!(ok_tokens, Ok(1), Result<u64, String>);
keyed!(pair, "pair:<pair.0>:<pair.1>", pair: (u64, u64));
keyed!(point, "point:<point>", point: u64);
batch_of!(by_slice, &[u64], HashMap<u64, u64>);
batch_of!(by_vec, Vec<u64>, HashMap<u64, u64>);
invalidating!(write, Result<u64, String>, Ok(1));

fn main() {
    let _ = whole(1);
    let _ = some(1);
    let _ = ok(1);
    let _ = ok_some(1);
    let _ = some_tokens(1);
    let _ = ok_tokens(1);
    let _ = pair((1, 2));
    let _ = point(1);
    let _ = by_slice(&[1]);
    let _ = by_vec(vec![1]);
    let _ = write(1);
}
