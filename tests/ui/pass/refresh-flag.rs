//! `refresh = <expr>`: any `bool` expression, typically an argument.
#![deny(warnings)]

use redis_cached::redis_cached;

#[redis_cached(key = "report:<id>", refresh = force)]
async fn report(id: u64, force: bool) -> String {
    id.to_string()
}

#[redis_cached(key = "report-not:<id>", refresh = !use_cache, ttl = 60)]
async fn report_not(id: u64, use_cache: bool) -> Result<String, String> {
    Ok(id.to_string())
}

#[redis_cached(key = "report-const:<id>", refresh = true)]
async fn report_const(id: u64) -> u64 {
    id
}

struct Options {
    fresh: bool,
}

#[redis_cached(key = "report-field:<id>", refresh = options.fresh)]
async fn report_field(id: u64, options: &Options) -> Option<u64> {
    Some(id)
}

fn main() {
    let _ = report(1, true);
    let _ = report_not(1, false);
    let _ = report_const(1);
    let _ = report_field(1, &Options { fresh: false });
}
