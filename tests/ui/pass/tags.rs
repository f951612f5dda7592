use redis_cached::{invalidates, redis_cached};

#[redis_cached(key = "employee:<id>", ttl = 60, tags = ["department:<dept>", "employees"])]
async fn employee(id: u64, dept: u32) -> String {
    format!("{id}:{dept}")
}

// Tags alone: no key template needed, and a generic invalidator need not render `<T>`.
#[invalidates(tags = ["department:<dept>"])]
async fn rename_department<T: Send>(dept: u32, name: T) {
    let _ = (dept, name);
}

#[invalidates("employee:<id>", tags = ["department:<old>", "department:<new>"])]
async fn move_employee(id: u64, old: u32, new: u32) {
    let _ = (id, old, new);
}

fn main() {
    let _ = employee(1, 2);
    let _ = rename_department(2, "R&D");
    let _ = move_employee(1, 2, 3);
}
