use redis_cached::invalidates;

#[invalidates("employee:<id>", tags = "department:<dept>")]
async fn move_employee(id: u64, dept: u32) {
    let _ = (id, dept);
}

fn main() {
    let _ = move_employee(1, 2);
}
