//! `tracing` spans: one per cached call (`cache.get`), per batch (`cache.get_many`) and per
//! invalidation (`cache.remove`), and a child (`cache.body`) around a body that runs. Names and
//! attributes follow OpenTelemetry's conventions for database clients and Sentry's cache
//! spans, so that exporters and cache dashboards read them as they are; the table is in
//! the guide's traces page (`guide::tracing`).
//!
//! A span is made only if a subscriber wants it: otherwise a call pays a test of the level
//! filter, one word in its future, and a test of a flag where an outcome is recorded.
//! Keys are the function's key template unless the cache opts into raw keys (they can hold
//! personal data).

use crate::Outcome;
use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::Empty;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

/// What a cache's spans say about it: set once when it is built.
pub(crate) struct Settings {
    /// `server.address` and `server.port` of a Redis cache (a Cluster's or Sentinel's seed
    /// list as written, without a port); `None` for `mem://`, whose spans name no server.
    server: Option<(String, Option<u16>)>,
    /// Whether `cache.key` holds the rendered key rather than the template.
    pub(crate) raw_keys: bool,
}

impl Settings {
    /// From the cache's URL (passwords may be redacted), whether it is Redis, and its
    /// raw-keys setting.
    pub(crate) fn new(url: &str, redis: bool, raw_keys: bool) -> Settings {
        let server = redis.then(|| {
            let hosts = crate::url::hosts(url);
            match hosts.rsplit_once(':') {
                Some((host, port)) if !hosts.contains(',') => match port.parse() {
                    Ok(port) => (host.to_owned(), Some(port)),
                    Err(_) => (hosts.to_owned(), None),
                },
                _ => (hosts.to_owned(), None),
            }
        });
        Settings { server, raw_keys }
    }
}

/// Set once a subscriber has taken a span of ours: until then, recording an outcome or a
/// size costs a load of this flag. (All calls share one callsite per span name, so a
/// subscriber takes all of them or none; after one took them, the current span may be
/// another's, where a field it does not declare is ignored.)
static TAKEN: AtomicBool = AtomicBool::new(false);

fn taken() -> bool {
    TAKEN.load(Ordering::Relaxed)
}

/// A span's test of the level first: without a subscriber at `INFO` or finer, no span is
/// made at all (the macro's own disabled path costs more where `tracing`'s `log` feature
/// is on). `None` when the subscriber does not take it.
fn taken_span(span: impl FnOnce() -> Span) -> Option<Span> {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return None;
    }
    let span = span();
    if span.is_disabled() {
        return None;
    }
    TAKEN.store(true, Ordering::Relaxed);
    Some(span)
}

/// A span of the cache's, with the attributes every one of them has, and `$more`.
macro_rules! cache_span {
    ($name:literal, $cache:expr, $function:expr, $($more:tt)*) => {{
        let server = Server::of($cache);
        tracing::info_span!(
            target: "redis_cached",
            $name,
            otel.kind = "client",
            db.system.name = server.system,
            server.address = server.address,
            server.port = server.port,
            code.function.name = $function,
            $($more)*
        )
    }};
}

/// The `cache.get` span of a call of `function` on `key`, if a subscriber takes it.
pub(crate) fn call(
    function: &'static str,
    cache: Option<&Settings>,
    key: Option<&str>,
) -> Option<Span> {
    taken_span(|| {
        cache_span!(
            "cache.get",
            cache,
            function,
            // Field values are computed only once the subscriber took the span.
            cache.key = match (cache, key) {
                (Some(cache), Some(key)) if cache.raw_keys => key,
                _ => template(function),
            },
            cache.hit = Empty,
            cache.outcome = Empty,
            cache.item_size = Empty,
            cache.invalidated_by = Empty,
            cache.invalidated_ago_ms = Empty,
            cache.invalidated_trace = Empty,
        )
    })
}

/// The `cache.get_many` span of a batch call of `function` over `ids` ids (disabled if the
/// subscriber does not take it).
pub(crate) fn batch(function: &'static str, cache: Option<&Settings>, ids: usize) -> Span {
    let span = taken_span(|| {
        cache_span!(
            "cache.get_many",
            cache,
            function,
            cache.key = template(function),
            cache.batch.size = count(ids),
            cache.hit = Empty,
            cache.batch.hits = Empty,
            cache.batch.misses = Empty,
        )
    });
    span.unwrap_or_else(Span::none)
}

/// The `cache.remove` span of an invalidation by `function` of `keys` (rendered).
pub(crate) fn remove(function: &'static str, cache: &Settings, keys: &[String]) -> Span {
    let span = taken_span(|| {
        cache_span!(
            "cache.remove",
            Some(cache),
            function,
            cache.key = match cache.raw_keys {
                true => Some(keys.join(" ")),
                false => invalidated_templates(function).map(str::to_owned),
            },
            cache.keys = count(keys.len()),
        )
    });
    span.unwrap_or_else(Span::none)
}

/// The `cache.refresh` span of what a call left running when it returned (a refresh in the
/// background, a fill past `soft_timeout`): a trace of its own, which follows from the
/// call's span.
pub(crate) fn continuation(function: &'static str, call: &Span) -> Span {
    if call.is_disabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: "redis_cached",
        parent: None,
        "cache.refresh",
        code.function.name = function,
    );
    span.follows_from(call);
    span
}

/// The `cache.body` span around a body that runs, if spans are taken.
pub(crate) fn body(function: &'static str) -> Span {
    if !taken() {
        return Span::none();
    }
    tracing::info_span!(target: "redis_cached", "cache.body", code.function.name = function)
}

/// A cached call's span, if a subscriber took it. Boxed, and with its handling out of
/// line, so that a call without one carries a word in its future and a test of it, not a
/// span's code, at each of the call's exits.
pub(crate) struct CallSpan(Option<Box<Span>>);

impl CallSpan {
    pub(crate) fn new(span: Option<Span>) -> CallSpan {
        CallSpan(span.map(Box::new))
    }

    /// The span to enter, a disabled one if none.
    #[inline(never)]
    pub(crate) fn handle(&self) -> Span {
        self.0.as_deref().cloned().unwrap_or_else(Span::none)
    }

    #[inline(never)]
    fn close(&mut self) {
        self.0 = None;
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if self.0.is_some() {
            self.close();
        }
    }
}

/// `future` in the call's span (entered on each poll), if it has one.
pub(crate) fn within<F: Future>(span: &CallSpan, future: F) -> Instrumented<F> {
    future.instrument(span.handle())
}

/// Records in the call's span what it served without entering it: its outcome, and the
/// size of the entry it read.
pub(crate) fn served(span: &CallSpan, outcome: Outcome, size: Option<usize>) {
    if let Some(span) = &span.0 {
        span.record("cache.outcome", outcome.as_str());
        span.record("cache.hit", is_hit(outcome));
        if let Some(size) = size {
            span.record("cache.item_size", count(size));
        }
    }
}

/// A span's server attributes, given at its creation (a field recorded later costs a
/// formatting subscriber another pass).
struct Server<'a> {
    system: Option<&'static str>,
    address: Option<&'a str>,
    port: Option<i64>,
}

impl<'a> Server<'a> {
    fn of(cache: Option<&'a Settings>) -> Server<'a> {
        let server = cache.and_then(|settings| settings.server.as_ref());
        Server {
            system: server.map(|_| "redis"),
            address: server.map(|(address, _)| address.as_str()),
            port: server.and_then(|(_, port)| port.map(i64::from)),
        }
    }
}

/// The current span if it is a `name` span of ours (`cache.get`: inside the parts of a call
/// run `within` its span; `cache.get_many`: inside a batch). Elsewhere (a hit, which records
/// into its span directly; a background refresh; a span the subscriber did not take) nothing
/// is recorded, so that no span gets an attribute twice (OpenTelemetry keeps both) and a
/// caller's own span is left alone.
fn current(name: &str) -> Option<Span> {
    let span = Span::current();
    (span.metadata().map(|meta| meta.name()) == Some(name)).then_some(span)
}

/// Records a call's outcome in its span (`cache.outcome`, `cache.hit`).
pub(crate) fn outcome(outcome: Outcome) {
    if taken()
        && let Some(span) = current("cache.get")
    {
        span.record("cache.outcome", outcome.as_str());
        span.record("cache.hit", is_hit(outcome));
    }
}

/// Records the size of the entry written, in bytes (`cache.item_size`).
pub(crate) fn item_size(bytes: usize) {
    if taken()
        && let Some(span) = current("cache.get")
    {
        span.record("cache.item_size", count(bytes));
    }
}

/// Records a batch's hits and misses in its span.
pub(crate) fn batch_counts(hits: usize, misses: usize) {
    if taken()
        && let Some(span) = current("cache.get_many")
    {
        span.record("cache.batch.hits", count(hits));
        span.record("cache.batch.misses", count(misses));
        span.record("cache.hit", misses == 0);
    }
}

/// Records in the span of a miss what invalidated its key: the invalidating function, how
/// long ago (ms, by the two processes' clocks), and its trace (a W3C `traceparent`); with the
/// `opentelemetry` feature, the span also links to that trace.
pub(crate) fn caused_by(by: &str, ago_ms: u64, trace: Option<&str>) {
    if !taken() {
        return;
    }
    let Some(span) = current("cache.get") else {
        return;
    };
    span.record("cache.invalidated_by", by);
    span.record("cache.invalidated_ago_ms", count(ago_ms));
    if let Some(trace) = trace {
        span.record("cache.invalidated_trace", trace);
        #[cfg(feature = "opentelemetry")]
        if let Some(context) = otel::parse(trace) {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.add_link(context);
        }
    }
}

/// The current span's trace as a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), for
/// a tombstone to keep; `None` without the `opentelemetry` feature or outside a trace.
pub(crate) fn traceparent() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    return otel::current();
    #[cfg(not(feature = "opentelemetry"))]
    None
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::TraceState;
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    pub(super) fn current() -> Option<String> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span = span.span_context();
        span.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                span.trace_id(),
                span.span_id(),
                span.trace_flags().to_u8()
            )
        })
    }

    /// A `traceparent` as a remote span context; `None` if malformed.
    pub(super) fn parse(traceparent: &str) -> Option<SpanContext> {
        let mut parts = traceparent.split('-');
        let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let trace = TraceId::from_hex(trace).ok()?;
        let span = SpanId::from_hex(span).ok()?;
        let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
        let context = SpanContext::new(trace, span, flags, true, TraceState::default());
        context.is_valid().then_some(context)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_traceparent_round_trips_and_garbage_is_refused() {
            let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let context = super::parse(text)
                .map(|context| format!("{}-{}", context.trace_id(), context.span_id()));
            assert_eq!(
                context.as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")
            );
            for bad in [
                "",
                "00-xyz-00f067aa0ba902b7-01",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ] {
                assert!(super::parse(bad).is_none(), "{bad}");
            }
        }
    }
}

/// A count as a signed integer: OpenTelemetry's integer attributes are `i64`, and
/// `tracing-opentelemetry` turns unsigned values into strings.
fn count(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Whether the value came from the cache rather than from a body run by this call.
fn is_hit(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Hit | Outcome::Coalesced | Outcome::Stale)
}

/// The templates the spans name, read from the registry once: each cached function's key
/// template, and each `#[invalidates]` function's key and tag (`#`-marked) templates,
/// space-separated.
struct Templates {
    cached: HashMap<&'static str, &'static str>,
    invalidated: HashMap<&'static str, String>,
}

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let functions = crate::registry::functions();
        let cached = functions
            .cached
            .into_iter()
            .map(|cached| (cached.path, cached.key.text()))
            .collect();
        let invalidated = functions
            .invalidating
            .into_iter()
            .map(|invalidating| {
                let keys = invalidating.keys.iter().map(|key| key.text().to_owned());
                let tags = invalidating
                    .tags
                    .iter()
                    .map(|tag| format!("#{}", tag.text()));
                (
                    invalidating.path,
                    keys.chain(tags).collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        Templates {
            cached,
            invalidated,
        }
    })
}

/// The key template of a cached function; its path if unknown.
fn template(function: &'static str) -> &'static str {
    templates()
        .cached
        .get(function)
        .copied()
        .unwrap_or(function)
}

/// The templates an `#[invalidates]` function deletes; `None` for
/// [`Cache::invalidate`](crate::Cache::invalidate), which has none.
fn invalidated_templates(function: &'static str) -> Option<&'static str> {
    templates().invalidated.get(function).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn server_attributes_come_from_the_urls_hosts() {
        let server = |url: &str, redis: bool| Settings::new(url, redis, false).server;
        let one = |host: &str, port: Option<u16>| Some((host.to_owned(), port));
        assert_eq!(server("redis://h:6380/2", true), one("h", Some(6380)));
        assert_eq!(server("redis://u:***@h", true), one("h", None));
        assert_eq!(
            server("redis+cluster://a:7000,b:7001", true),
            one("a:7000,b:7001", None)
        );
        assert_eq!(server("redis://[::1]:6379", true), one("[::1]", Some(6379)));
        assert_eq!(server("mem://", false), None);
    }
}
