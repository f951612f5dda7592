//! The example server's traces, read from OpenTelemetry's in-memory exporter: a request's
//! span holds the cached call's span, which holds the body's on a miss; a write's request
//! holds its invalidation. The example runs in this process (its `run`, under this test's
//! subscriber) against the harness's redis-server and a fresh SQLite file, driven over HTTP.
//! A binary of its own: the subscriber and the example's metrics recorder are process-wide,
//! and the example reads its settings from the environment.

mod harness;

#[path = "../examples/server/main.rs"]
#[allow(dead_code)]
mod example;

use harness::RedisServer;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use std::time::{Duration, Instant};
use tracing_subscriber::layer::SubscriberExt;

fn attribute(span: &SpanData, key: &str) -> String {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map_or_else(String::new, |attribute| {
            attribute.value.as_str().into_owned()
        })
}

/// The spans of the trace whose root is the request span named `name`, the latest first.
fn trace_of<'a>(spans: &'a [SpanData], name: &str) -> Vec<Vec<&'a SpanData>> {
    spans
        .iter()
        .rev()
        .filter(|span| span.name == name)
        .map(|root| {
            let trace = root.span_context.trace_id();
            spans
                .iter()
                .filter(|span| span.span_context.trace_id() == trace)
                .collect()
        })
        .collect()
}

fn child<'a>(trace: &[&'a SpanData], parent: &SpanData, name: &str) -> Option<&'a SpanData> {
    trace
        .iter()
        .copied()
        .find(|span| span.name == name && span.parent_span_id == parent.span_context.span_id())
}

#[test]
fn a_requests_trace_holds_the_cached_call_and_the_body_on_a_miss() {
    let redis = RedisServer::start();
    let port = harness::free_port();
    let db = std::env::temp_dir().join(format!(
        "redis-cached-traces-{}.sqlite3",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&db);
    // SAFETY: set before any thread of this binary is started (this is its only test, and
    // the runtime is built below).
    unsafe {
        std::env::set_var("REDIS_URL", redis.url());
        std::env::set_var("BIND", format!("127.0.0.1:{port}"));
        std::env::set_var("DATABASE_URL", format!("sqlite://{}", db.display()));
        std::env::set_var("DB_LATENCY_MS", "0");
    }
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(example::traces::layer(&provider)),
    )
    .expect("the only subscriber of this binary");
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    };
    // On a thread of its own, as `main` runs it (its future is not provably `Send`, so it
    // cannot be spawned); it serves until the process ends.
    let server = runtime();
    std::thread::spawn(move || server.block_on(example::run()));
    let runtime = runtime();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    runtime.block_on(async {
        let started = Instant::now();
        while client.get(format!("{base}/health")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the example did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..2 {
            let response = client.get(format!("{base}/employees/7")).send().await;
            assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
        }
        let status = client
            .put(format!("{base}/employees/7/status"))
            .json(&serde_json::json!({ "status": "out" }))
            .send()
            .await
            .map(|response| response.status().as_u16());
        assert_eq!(status.ok(), Some(200));
    });
    provider.force_flush().expect("spans flushed");
    let spans = exporter.get_finished_spans().expect("the finished spans");

    let reads = trace_of(&spans, "GET /employees/{id}");
    assert_eq!(reads.len(), 2, "two reads: {spans:#?}");
    let (hit, miss) = (&reads[0], &reads[1]);
    for (trace, outcome) in [(miss, "MISS"), (hit, "HIT")] {
        let request = trace[0..]
            .iter()
            .find(|span| span.name == "GET /employees/{id}")
            .copied()
            .expect("the request's span");
        assert_eq!(attribute(request, "http.route"), "/employees/{id}");
        let call = child(trace, request, "cache.get")
            .unwrap_or_else(|| panic!("no cache.get under the request: {trace:#?}"));
        assert_eq!(attribute(call, "cache.outcome"), outcome);
        assert_eq!(attribute(call, "cache.key"), "employee:<id>");
        assert!(attribute(call, "code.function.name").ends_with("repo::employee"));
        let body = child(trace, call, "cache.body");
        assert_eq!(body.is_some(), outcome == "MISS", "{trace:#?}");
    }

    let writes = trace_of(&spans, "PUT /employees/{id}/status");
    let write = writes.first().expect("the write's trace");
    let request = write
        .iter()
        .find(|span| span.name == "PUT /employees/{id}/status")
        .copied()
        .expect("the request's span");
    let remove = write
        .iter()
        .find(|span| span.name == "cache.remove")
        .copied()
        .unwrap_or_else(|| panic!("no cache.remove in the write's trace: {write:#?}"));
    assert_eq!(
        remove.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(attribute(remove, "cache.key"), "employee:<id>:status");
    let _ = std::fs::remove_file(&db);
}
