//! The dashboards (`dashboards/grafana/redis-cached.json`) and alert rules
//! (`dashboards/prometheus/alerts.yml`) query only metrics the library exports: a workload
//! against real redis-servers, with the example server's Prometheus recorder installed
//! (`examples/server/metrics.rs`, histogram buckets included), makes every metric of
//! `describe_metrics`'s table appear, and each `redis_cached_*` name in an `expr` must be on
//! the rendered page (a `_bucket` series only if the histogram has buckets). The JSON must
//! parse, every panel name a datasource and a query; with `promtool` on the PATH the rules,
//! and the dashboard's queries as rules, pass `promtool check rules`. A binary of its own: the
//! recorder is process-wide.

mod harness;
mod support;

#[path = "../examples/server/metrics.rs"]
mod example_metrics;

use harness::RedisServer;
use metrics_exporter_prometheus::PrometheusBuilder;
use redis_cached::{Cache, NearCache, invalidates, redis_cached};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::eventually;

#[redis_cached(key = "dash:<id>", ttl = 60, cache = cache)]
async fn read(cache: &Cache, id: u64) -> u64 {
    id
}

#[invalidates("dash:<id>", cache = cache)]
async fn write(cache: &Cache, id: u64) {}

/// Run again, and its entry overwritten, when `force`.
#[redis_cached(key = "dash-refresh:<id>", ttl = 60, cache = cache, refresh = force)]
async fn reload(cache: &Cache, id: u64, force: bool) -> u64 {
    id
}

/// Slow enough that a second call waits for the first one's fill.
#[redis_cached(key = "dash-slow:<id>", ttl = 60, cache = cache)]
async fn slow(cache: &Cache, id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    id
}

/// Fails when `fail`: past its 100 ms TTL, answered from the stored value.
#[redis_cached(key = "dash-stale:<id>", ttl = Duration::from_millis(100), stale_if_error = 60, cache = cache)]
async fn flaky(cache: &Cache, id: u64, fail: bool) -> Result<u64, String> {
    if fail { Err("down".into()) } else { Ok(id) }
}

/// Every metric in `describe_metrics`'s table (the runtime's `telemetry.rs`).
fn documented() -> BTreeSet<String> {
    include_str!("../cached-runtime/src/telemetry.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("/// | `redis_cached_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("redis_cached_{name}"))
        .collect()
}

/// Every `redis_cached_*` name in `expr`, histogram and summary suffixes kept.
fn names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("redis_cached_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The Grafana dashboard, parsed, with each panel checked; returns every panel's queries.
fn dashboard_exprs(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("dashboards/grafana/redis-cached.json"))
        .expect("the dashboard is readable");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard parses");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("template variables")
        .iter()
        .filter_map(|variable| variable["name"].as_str())
        .collect();
    assert_eq!(variables, ["datasource", "function"]);
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut exprs = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title:?} names no datasource"
        );
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no target");
        for target in targets {
            let expr = target["expr"].as_str().expect("each target has an expr");
            assert!(!expr.is_empty(), "panel {title:?} has an empty expr");
            exprs.push(expr.to_owned());
        }
    }
    exprs
}

/// The alert rules' expressions: each on one `expr:` line.
fn rule_exprs(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("dashboards/prometheus/alerts.yml"))
        .expect("the rules are readable");
    let exprs: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("expr:"))
        .map(|expr| expr.trim().to_owned())
        .collect();
    assert_eq!(
        exprs.len(),
        text.matches("- alert:").count(),
        "every rule has a one-line expr"
    );
    exprs
}

/// Runs `promtool check rules` on the rules file and on the dashboard's queries written as
/// recording rules (Grafana's variables replaced by values), if promtool is installed.
fn promtool_check(root: &Path, dashboard: &[String]) {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("NOTE: promtool is not on the PATH; the rules' syntax was not checked");
        return;
    }
    let dir = harness::TempDir::new("dashboards");
    let queries = dir.path().join("dashboard-queries.yml");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expr) in dashboard.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$function", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    std::fs::write(&queries, rules).expect("a temporary file");
    let output = Command::new("promtool")
        .args(["check", "rules"])
        .arg(root.join("dashboards/prometheus/alerts.yml"))
        .arg(&queries)
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_query_only_exported_metrics() {
    let handle = example_metrics::recorder()
        .and_then(PrometheusBuilder::install_recorder)
        .expect("the only recorder of this binary");

    // Hits, misses, invalidations (and the miss after one), refreshes, coalesced calls,
    // stale answers, a clear.
    let server = RedisServer::start();
    let cache = Cache::builder(&server.url())
        .near_cache(NearCache::new(1 << 20).probe_every(Duration::from_millis(50)))
        // The miss after `write` replaces its tombstone: the invalidation-to-miss delay.
        .tombstones(Duration::from_secs(60))
        .build()
        .await
        .expect("redis answers");
    read(&cache, 1).await;
    read(&cache, 1).await;
    write(&cache, 1).await;
    read(&cache, 1).await;
    reload(&cache, 1, false).await;
    reload(&cache, 1, true).await;
    tokio::join!(slow(&cache, 1), slow(&cache, 1));
    assert_eq!(flaky(&cache, 2, false).await, Ok(2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(flaky(&cache, 2, true).await, Ok(2));
    cache.clear().await.expect("the clear runs");
    eventually(
        Duration::from_secs(5),
        "a near-tier probe arrives",
        || async { cache.near_eviction_lag().is_some() },
    )
    .await;

    // An outage: errors, bypasses, the breaker, deferred invalidations.
    let mut down = RedisServer::start();
    let other = Cache::builder(&down.url())
        .timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("redis answers");
    read(&other, 1).await;
    down.kill();
    for id in 0..5 {
        read(&other, id).await;
    }
    write(&other, 1).await;
    down.restart();

    let page = handle.render();
    let exported = |name: &str| page.contains(&format!("# TYPE {name} "));
    let documented = documented();
    for name in &documented {
        assert!(exported(name), "{name} is not on the page:\n{page}");
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard = dashboard_exprs(root);
    let rules = rule_exprs(root);
    let mut checked = 0;
    for expr in dashboard.iter().chain(&rules) {
        for name in names(expr) {
            let (base, series) = match name.strip_suffix("_bucket") {
                // A quantile over buckets needs them rendered, not a summary's quantiles.
                Some(base) => (base.to_owned(), Some(format!("{name}{{"))),
                None => match name
                    .strip_suffix("_sum")
                    .or_else(|| name.strip_suffix("_count"))
                {
                    Some(base) => (base.to_owned(), None),
                    None => (name.clone(), None),
                },
            };
            assert!(exported(&base), "{expr}\nqueries {base}, not exported");
            if let Some(series) = series {
                assert!(
                    page.contains(&series),
                    "{expr}\nqueries {name}, but {base} has no buckets"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} metric names found in the queries"
    );
    promtool_check(root, &dashboard);
}
