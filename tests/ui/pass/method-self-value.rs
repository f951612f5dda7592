//! By-value `self` receivers: the key is rendered before the body consumes `self`.
#![deny(warnings)]

use redis_cached::{Cache, invalidates, redis_cached};

struct Query {
    cache: Cache,
    table: String,
    limit: u32,
}

impl Query {
    #[redis_cached(key = "query:<self.table>:<self.limit>", cache = self.cache.clone())]
    async fn run(self) -> Result<Vec<String>, String> {
        let Query { table, limit, .. } = self;
        Ok(vec![table; limit as usize])
    }

    #[invalidates("query:<self.table>:<self.limit>", cache = &self.cache)]
    async fn forget(mut self) -> String {
        self.table.push('!');
        self.table
    }
}

fn main() {
    let _ = |query: Query| query.run();
    let _ = |query: Query| query.forget();
}
