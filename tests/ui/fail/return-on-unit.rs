use redis_cached::invalidates;

// `<return>` names the result, and these functions return nothing to render.
#[invalidates("user:<id>", "user:<return>")]
async fn rename_user(id: u64, name: String) {
    let _ = (id, name);
}

#[invalidates("user:<id>", tags = ["users:<return.id>"])]
async fn delete_user(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {
    let _ = rename_user(1, String::new());
    let _ = delete_user(1);
}
