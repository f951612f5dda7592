use redis_cached::cache_put;

struct Row {
    id: u64,
}

// The value is stored: its type must be serde's.
#[cache_put("user:<id>")]
async fn rename(id: u64) -> Result<Row, String> {
    Ok(Row { id })
}

fn main() {
    let _ = rename(1);
}
