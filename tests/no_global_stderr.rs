//! Forgetting `redis_cached::init` is loud whatever logging the application has: without a
//! `tracing` subscriber, the first cached call says so once on stderr.
//!
//! The test runs this binary again as a child (with `CHILD` set), whose stderr it reads.

use redis_cached::redis_cached;
use std::process::Command;

const CHILD: &str = "REDIS_CACHED_NO_GLOBAL_CHILD";
const TEST: &str = "without_a_subscriber_a_forgotten_init_is_said_on_stderr_once";

#[redis_cached(key = "lonely:<id>", ttl = 60)]
async fn lonely(id: u64) -> u64 {
    id + 1
}

#[test]
fn without_a_subscriber_a_forgotten_init_is_said_on_stderr_once() {
    if std::env::var_os(CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        for id in 0..3 {
            assert_eq!(runtime.block_on(lonely(id)), id + 1);
        }
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines = stderr
        .lines()
        .filter(|line| line.starts_with("redis-cached: no cache is installed"))
        .count();
    assert_eq!(lines, 1, "said once on stderr:\n{stderr}");
    assert!(stderr.contains("redis_cached::init"), "{stderr}");
}
