//! Type and const parameters named in the key: `<T>` renders `std::any::type_name::<T>()`,
//! `<N>` the const's value.
#![deny(warnings)]

use redis_cached::{invalidates, redis_cached};

trait Table {
    const NAME: &'static str;
}

struct Users;

impl Table for Users {
    const NAME: &'static str = "users";
}

#[redis_cached(key = "count:<T>:<id>", ttl = 60)]
async fn count_rows<T: Table>(id: u64) -> u64 {
    T::NAME.len() as u64 + id
}

#[redis_cached(key = "rows:<T>:<N>:<id>")]
async fn first_rows<T, const N: usize>(id: u64) -> Vec<u64>
where
    T: Table,
{
    vec![id; N]
}

#[invalidates("count:<T>:<id>")]
async fn clear<T: Table>(id: u64) {
    let _ = id;
}

struct Repo;

impl Repo {
    #[redis_cached(key = "repo:<T>:<id>")]
    async fn count<T: Table>(&self, id: u64) -> u64 {
        T::NAME.len() as u64 + id
    }
}

fn main() {
    let _ = count_rows::<Users>(1);
    let _ = first_rows::<Users, 3>(1);
    let _ = clear::<Users>(1);
    let _ = Repo.count::<Users>(1);
}
