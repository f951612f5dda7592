use redis_cached::cache_put;

#[derive(serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
}

// The fence goes on before the body runs: a key from the result cannot have one.
#[cache_put("user:<id>", "user_by_id:<return.id>")]
async fn rename(id: u64) -> Result<User, String> {
    Ok(User { id })
}

fn main() {
    let _ = rename(1);
}
