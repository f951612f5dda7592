use redis_cached::redis_cached;

// A tag template is checked like a key template: `<department>` names no parameter.
#[redis_cached(key = "employee:<id>", tags = ["department:<department>"])]
async fn employee(id: u64, dept: u32) -> String {
    format!("{id}:{dept}")
}

fn main() {
    let _ = employee(1, 2);
}
