//! Every freshness and TTL option together, on a method, and the futures stay `Send`.
use redis_cached::redis_cached;
use std::time::Duration;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Employee {
    name: String,
    in_office: bool,
}

/// In/out status changes often, names rarely: the value picks its TTL.
fn ttl_of(employee: &Employee) -> Duration {
    if employee.in_office {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(300)
    }
}

struct Directory {
    hot_seconds: u64,
}

impl Directory {
    #[redis_cached(key = "employee:<id>", ttl_from = ttl_of, stale = "1m", stale_if_error = "1h", refresh_ahead)]
    async fn employee(&self, id: u64) -> Result<Option<Employee>, std::io::Error> {
        Ok(Some(Employee {
            name: format!("{id}"),
            in_office: true,
        }))
    }

    #[redis_cached(key = "count", ttl = self.hot_seconds, refresh_ahead = 2.0)]
    async fn count(&self) -> u64 {
        1
    }

    #[redis_cached(key = "name:<id>", ttl = Duration::from_millis(1500), stale = 30)]
    async fn name(&self, id: u64) -> String {
        format!("{id}")
    }
}

/// The refresh runs in a task of its own: the arguments are owned.
#[redis_cached(key = "owned:<id>", ttl = 60, stale = "1m", refresh_ahead, revalidate = "background")]
async fn owned(id: u64, directory: std::sync::Arc<Directory>) -> Result<u64, std::io::Error> {
    Ok(id + directory.hot_seconds)
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let directory = Directory { hot_seconds: 5 };
    assert_send(directory.employee(1));
    assert_send(directory.count());
    assert_send(directory.name(1));
    assert_send(owned(1, std::sync::Arc::new(Directory { hot_seconds: 1 })));
}
