use redis_cached::invalidates;

// The grammar of `#[redis_cached]`: each bad key is reported.
#[invalidates("#{tenant:<tenant>}:user:<id>", "#{}:users", "#{tenant:<tenant>", "#{a}:#{b}")]
async fn rename(tenant: u32, id: u64) -> Result<(), String> {
    let _ = (tenant, id);
    Ok(())
}

fn main() {
    let _ = rename(1, 2);
}
