//! `<return>` in `#[invalidates]` templates, keys and tags, for every shape of result: the
//! value (`T`), `Ok` (`Result<T, E>`, `io::Result<T>`, a generic alias), `Some`
//! (`Option<T>`) and `Ok(Some)` (`Result<Option<T>, E>`); fields, nested fields and tuple
//! indexes; in methods, and beside keys and tags from the arguments.
#![deny(warnings)]

use redis_cached::{Cache, invalidates};

struct Address {
    city: String,
}

struct Employee {
    id: u64,
    department: String,
    address: Address,
}

fn row(id: u64) -> Employee {
    Employee {
        id,
        department: "Sales".into(),
        address: Address {
            city: "Paris".into(),
        },
    }
}

type AppResult<T> = Result<T, String>;

#[invalidates("employee:<return>")]
async fn whole(department: String) -> u64 {
    department.len() as u64
}

#[invalidates(
    "employee:<return.id>",
    "department:<return.department>:employees",
    "city:<return.address.city>",
    "department:<department>:count",
    tags = ["department:<return.department>", "employees"]
)]
async fn ok(department: String) -> Result<Employee, String> {
    Ok(Employee {
        department,
        ..row(1)
    })
}

#[invalidates("employee:<return.0>:<return.1>")]
async fn ok_tuple() -> std::io::Result<(u64, String)> {
    Ok((1, "a".into()))
}

#[invalidates(tags = ["department:<return.department>"])]
async fn ok_alias(id: u64) -> AppResult<Employee> {
    Ok(row(id))
}

#[invalidates("employee:<id>", "department:<return.department>:employees")]
async fn some(id: u64) -> Option<Employee> {
    Some(row(id))
}

#[invalidates("employee:<id>", "department:<return.department>:employees")]
async fn ok_some(id: u64) -> Result<Option<Employee>, std::io::Error> {
    Ok(Some(row(id)))
}

struct Repo {
    cache: Cache,
    tenant: u32,
}

impl Repo {
    #[invalidates(
        "tenant:<self.tenant>:employee:<return.id>",
        "#{tenant:<self.tenant>}:department:<return.department>",
        cache = &self.cache
    )]
    async fn create(&self, department: &str) -> Result<Employee, String> {
        Ok(Employee {
            department: department.to_owned(),
            ..row(u64::from(self.tenant))
        })
    }
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(whole(String::new()));
    assert_send(ok(String::new()));
    assert_send(ok_tuple());
    assert_send(ok_alias(1));
    assert_send(some(1));
    assert_send(ok_some(1));
    let _ = |repo: &Repo| assert_send(repo.create("Sales"));
}
