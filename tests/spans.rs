//! The tracing spans of cached calls, batches and invalidations, captured with a real
//! subscriber (`tracing-opentelemetry` into OpenTelemetry's in-memory exporter) against a
//! real redis-server: names, attributes, parents, and keys kept out of spans by default.

mod harness;
mod support;

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use redis_cached::{Cache, CacheBuilder, invalidates, redis_cached};
use std::collections::HashMap;
use std::future::Future;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

#[redis_cached(key = "item:<id>", ttl = 60, cache = cache)]
async fn item(cache: &Cache, id: u64) -> String {
    tracing::info_span!("database").in_scope(|| format!("item {id}"))
}

#[invalidates("item:<id>", cache = cache)]
async fn change(cache: &Cache, id: u64) {}

#[redis_cached(key = "many:<ids>", ttl = 60, batch = ids, cache = cache)]
async fn many(cache: &Cache, ids: &[u64]) -> HashMap<u64, u64> {
    ids.iter().map(|id| (*id, id * 2)).collect()
}

/// Refreshed in a task of its own once past its 100 ms TTL.
#[redis_cached(key = "bg:<id>", ttl = std::time::Duration::from_millis(100), stale = "1m", revalidate = "background", cache = cache)]
async fn refreshed(cache: Cache, id: u64) -> u64 {
    tracing::info_span!("database").in_scope(|| id)
}

/// Runs `work` in a `request` span on a current-thread runtime under a subscriber that
/// exports to memory, and returns the finished spans.
fn traced<F: Future>(work: impl FnOnce() -> F) -> Vec<SpanData> {
    traced_with(None, work)
}

/// [`traced`], with the exporter's layer behind `filter`.
fn traced_with<F: Future>(filter: Option<Targets>, work: impl FnOnce() -> F) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(filter);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let root = tracing::info_span!("request");
            tracing::Instrument::instrument(work(), root).await;
        })
    });
    provider.force_flush().expect("spans flushed");
    exporter.get_finished_spans().expect("the finished spans")
}

/// A builder for the shared server with a prefix of its own, and the prefix.
fn fresh(test: &str) -> (String, CacheBuilder) {
    let prefix = support::unique_prefix(test);
    let builder = Cache::builder(harness::shared_url()).prefix(prefix.as_str());
    (prefix, builder)
}

async fn built(builder: CacheBuilder) -> Cache {
    builder
        .build()
        .await
        .expect("the shared redis-server answers")
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|KeyValue { key: name, .. }| name.as_str() == key)
        .map(|KeyValue { value, .. }| value)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key).map_or_else(String::new, |value| value.as_str().into_owned())
}

/// Fails if a span holds an attribute twice (OpenTelemetry keeps both).
fn assert_attributes_once(span: &SpanData) {
    let mut keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
    let all = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), all, "an attribute recorded twice: {span:#?}");
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

fn parent_of(span: &SpanData) -> SpanId {
    span.parent_span_id
}

#[test]
fn a_cached_call_is_a_span_with_the_conventions_attributes_and_its_body_a_child() {
    let (_, builder) = fresh("spans");
    let spans = traced(|| async {
        let cache = built(builder).await;
        assert_eq!(item(&cache, 7).await, "item 7");
        assert_eq!(item(&cache, 7).await, "item 7");
    });
    let request = named(&spans, "request")[0];
    let calls = named(&spans, "cache.get");
    assert_eq!(calls.len(), 2, "one span per call: {spans:#?}");
    let (miss, hit) = (calls[0], calls[1]);
    for call in [miss, hit] {
        assert_eq!(parent_of(call), request.span_context.span_id());
        assert_eq!(
            call.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(text(call, "db.system.name"), "redis");
        assert_eq!(text(call, "server.address"), "127.0.0.1");
        assert!(attribute(call, "server.port").is_some());
        assert_eq!(text(call, "code.function.name"), "spans::item");
        // The template, not the argument's value.
        assert_eq!(text(call, "cache.key"), "item:<id>");
    }
    assert_eq!(text(miss, "cache.outcome"), "MISS");
    assert_eq!(attribute(miss, "cache.hit"), Some(&Value::Bool(false)));
    assert_eq!(text(hit, "cache.outcome"), "HIT");
    assert_eq!(attribute(hit, "cache.hit"), Some(&Value::Bool(true)));
    // `"item 7"` in JSON, with the entry's trailer.
    for call in [miss, hit] {
        let Some(Value::I64(size)) = attribute(call, "cache.item_size") else {
            panic!("no cache.item_size: {call:#?}");
        };
        assert!(*size > 8, "{size}");
    }
    // The body ran once, in a child of the miss; the database span inside it.
    let bodies = named(&spans, "cache.body");
    assert_eq!(bodies.len(), 1, "{spans:#?}");
    assert_eq!(parent_of(bodies[0]), miss.span_context.span_id());
    let database = named(&spans, "database")[0];
    assert_eq!(parent_of(database), bodies[0].span_context.span_id());
}

#[test]
fn raw_keys_are_in_spans_only_when_the_cache_opts_in() {
    let (prefix, builder) = fresh("raw");
    let spans = traced(|| async {
        let cache = built(builder.span_raw_keys(true)).await;
        item(&cache, 8).await;
        change(&cache, 8).await;
    });
    assert_eq!(
        text(named(&spans, "cache.get")[0], "cache.key"),
        format!("{prefix}item:8")
    );
    assert_eq!(
        text(named(&spans, "cache.remove")[0], "cache.key"),
        format!("{prefix}item:8")
    );
}

#[test]
fn an_invalidation_and_a_batch_are_spans_too() {
    let (_, builder) = fresh("writes");
    let spans = traced(|| async {
        let cache = built(builder).await;
        change(&cache, 9).await;
        cache.invalidate(&["item:10"]).await.expect("deleted");
        assert_eq!(many(&cache, &[1, 2, 3]).await.len(), 3);
        assert_eq!(many(&cache, &[1, 2, 4]).await.len(), 3);
    });
    let removes = named(&spans, "cache.remove");
    assert_eq!(removes.len(), 2, "{spans:#?}");
    assert_eq!(text(removes[0], "code.function.name"), "spans::change");
    assert_eq!(text(removes[0], "cache.key"), "item:<id>");
    assert_eq!(attribute(removes[0], "cache.keys"), Some(&Value::I64(1)));
    assert_eq!(text(removes[1], "code.function.name"), "Cache::invalidate");
    // The keys of `Cache::invalidate` are the caller's: not in the span by default.
    assert_eq!(attribute(removes[1], "cache.key"), None);

    let batches = named(&spans, "cache.get_many");
    assert_eq!(batches.len(), 2, "{spans:#?}");
    let counts = |span: &SpanData| {
        (
            attribute(span, "cache.batch.size").cloned(),
            attribute(span, "cache.batch.hits").cloned(),
            attribute(span, "cache.batch.misses").cloned(),
        )
    };
    assert_eq!(
        counts(batches[0]),
        (
            Some(Value::I64(3)),
            Some(Value::I64(0)),
            Some(Value::I64(3))
        )
    );
    assert_eq!(
        counts(batches[1]),
        (
            Some(Value::I64(3)),
            Some(Value::I64(2)),
            Some(Value::I64(1))
        )
    );
    assert_eq!(text(batches[0], "cache.key"), "many:<ids>");
    // One body span per batch that ran its body, inside the batch's span.
    let bodies = named(&spans, "cache.body");
    assert_eq!(bodies.len(), 2, "{spans:#?}");
    assert_eq!(parent_of(bodies[1]), batches[1].span_context.span_id());
}

#[test]
fn without_a_subscriber_that_wants_them_no_span_is_made() {
    // A subscriber that turns `redis_cached`'s spans off: the test's own are exported.
    let off = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("redis_cached", tracing::level_filters::LevelFilter::OFF);
    let (_, builder) = fresh("off");
    let spans = traced_with(Some(off), || async {
        let cache = built(builder).await;
        item(&cache, 1).await;
        item(&cache, 1).await;
    });
    let names: Vec<_> = spans.iter().map(|span| span.name.as_ref()).collect();
    assert_eq!(names, ["database", "request"], "{spans:#?}");
}

#[test]
fn a_miss_after_an_invalidation_names_it_and_links_to_its_trace() {
    let (_, builder) = fresh("cause");
    let spans = traced(|| async {
        let cache = built(builder.tombstones(std::time::Duration::from_secs(60))).await;
        item(&cache, 11).await;
        change(&cache, 11).await;
        item(&cache, 11).await;
    });
    let remove = named(&spans, "cache.remove")[0];
    let calls = named(&spans, "cache.get");
    assert_eq!(calls.len(), 2, "{spans:#?}");
    let (first, after) = (calls[0], calls[1]);
    // The first miss found the key absent: no cause.
    assert_eq!(attribute(first, "cache.invalidated_by"), None);
    assert_eq!(text(after, "cache.outcome"), "MISS");
    assert_eq!(text(after, "cache.invalidated_by"), "spans::change");
    assert!(attribute(after, "cache.invalidated_ago_ms").is_some());
    let context = remove.span_context.clone();
    assert_eq!(
        text(after, "cache.invalidated_trace"),
        format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        )
    );
    let linked: Vec<_> = after
        .links
        .iter()
        .map(|link| link.span_context.span_id())
        .collect();
    assert_eq!(linked, [context.span_id()], "{after:#?}");
}

#[test]
fn a_batch_of_two_hundred_ids_records_each_attribute_once() {
    let (_, builder) = fresh("big");
    let ids: Vec<u64> = (0..200).collect();
    let spans = traced(|| async {
        let cache = built(builder).await;
        assert_eq!(many(&cache, &ids[..100]).await.len(), 100);
        assert_eq!(many(&cache, &ids).await.len(), 200);
    });
    let batches = named(&spans, "cache.get_many");
    assert_eq!(batches.len(), 2, "{spans:#?}");
    for batch in &batches {
        assert_attributes_once(batch);
    }
    assert_eq!(
        attribute(batches[1], "cache.batch.hits"),
        Some(&Value::I64(100))
    );
    assert_eq!(
        attribute(batches[1], "cache.hit"),
        Some(&Value::Bool(false))
    );
    for call in named(&spans, "cache.get") {
        assert_attributes_once(call);
    }
}

#[test]
fn a_refresh_in_the_background_is_a_trace_of_its_own_that_follows_from_the_call() {
    let (_, builder) = fresh("background");
    let spans = traced(|| async {
        let cache = built(builder).await;
        refreshed(cache.clone(), 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // Stale: answered at once, refreshed in a task.
        refreshed(cache.clone(), 1).await;
        // Until the refresh has stored (a hit within the new entry's 100 ms), then a moment
        // for its span to end.
        let started = std::time::Instant::now();
        while redis_cached::with_outcome(refreshed(cache.clone(), 1))
            .await
            .1
            != Some(redis_cached::Outcome::Hit)
        {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "no refresh"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    });
    let calls = named(&spans, "cache.get");
    assert!(calls.len() >= 3, "{spans:#?}");
    assert_eq!(text(calls[1], "cache.outcome"), "STALE");
    let refresh = named(&spans, "cache.refresh");
    assert_eq!(refresh.len(), 1, "{spans:#?}");
    let refresh = refresh[0];
    assert_eq!(
        refresh.parent_span_id,
        SpanId::INVALID,
        "a root: {refresh:#?}"
    );
    let linked: Vec<_> = refresh
        .links
        .iter()
        .map(|link| link.span_context.span_id())
        .collect();
    assert_eq!(linked, [calls[1].span_context.span_id()]);
    // Its body, and what the body traced, nest in it.
    let bodies = named(&spans, "cache.body");
    assert_eq!(
        bodies.len(),
        2,
        "the first call's and the refresh's: {spans:#?}"
    );
    assert_eq!(bodies[1].parent_span_id, refresh.span_context.span_id());
    for call in calls {
        assert_attributes_once(call);
    }
}
