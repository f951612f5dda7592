use redis_cached::redis_cached;

trait Source {
    fn fetch(&self, id: u64) -> u64;
}

#[redis_cached(key = "value:<id>", ttl = 60)]
async fn value(source: &impl Source, id: u64) -> u64 {
    source.fetch(id)
}

fn main() {}
