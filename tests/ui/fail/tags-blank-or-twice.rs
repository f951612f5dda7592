use redis_cached::{invalidates, redis_cached};

#[redis_cached(key = "employee:<id>", tags = [""])]
async fn employee(id: u64) -> String {
    id.to_string()
}

#[invalidates(tags = ["employees", "department:<dept>", "employees"])]
async fn hire(dept: String) {
    let _ = dept;
}

fn main() {
    let _ = employee(1);
    let _ = hire(String::new());
}
