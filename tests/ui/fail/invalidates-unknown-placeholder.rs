use redis_cached::invalidates;

#[invalidates("user:<id>", "users:by-name:<username>")]
async fn rename(id: u64, name: String) -> Result<(), String> {
    let _ = (id, name);
    Ok(())
}

fn main() {
    let _ = rename(1, String::new());
}
