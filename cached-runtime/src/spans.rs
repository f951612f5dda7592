//! `tracing` spans: one per cached call (`cache.get`), per batch (`cache.get_many`) and per
//! invalidation (`cache.remove`), and a child (`cache.body`) around a body that runs. Names and
//! attributes follow OpenTelemetry's conventions for database clients and Sentry's cache
//! spans, so that exporters and cache dashboards read them as they are; the table is in
//! the guide's observability page.
//!
//! A span is made only if a subscriber wants it: otherwise a call pays a check of the
//! callsite's interest and a test of a thread-local flag where an outcome is recorded.
//! Keys are the function's key template unless the cache opts into raw keys (they can hold
//! personal data).

use crate::Outcome;
use crate::cache::Inner;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tracing::Span;
use tracing::field::Empty;

/// What a cache's spans say about it: set once when it is built.
pub(crate) struct Settings {
    /// `server.address`: the host (a Cluster's or Sentinel's seed list as written); empty for
    /// `mem://`.
    address: String,
    /// `server.port`, when the URL names one server.
    port: Option<u16>,
    /// `db.system.name`: `redis`, or empty for `mem://`.
    system: &'static str,
    /// Whether `cache.key` holds the rendered key rather than the template.
    pub(crate) raw_keys: bool,
}

impl Settings {
    /// From the cache's URL (passwords already redacted) and its raw-keys setting.
    pub(crate) fn new(redacted_url: &str, redis: bool, raw_keys: bool) -> Settings {
        let authority = redacted_url
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .rsplit_once('@')
            .map_or_else(
                || redacted_url.split_once("://").map_or("", |(_, rest)| rest),
                |(_, rest)| rest,
            );
        let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
        let (address, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(',') => match port.parse() {
                Ok(port) => (host, Some(port)),
                Err(_) => (authority, None),
            },
            _ => (authority, None),
        };
        Settings {
            address: if redis {
                address.to_owned()
            } else {
                String::new()
            },
            port: port.filter(|_| redis),
            system: if redis { "redis" } else { "" },
            raw_keys,
        }
    }
}

thread_local! {
    /// Whether the innermost cached call being polled on this thread has a span: where an
    /// outcome or a size is recorded, only then is the current span looked up. (All calls
    /// share one callsite, so a subscriber enables all of them or none.)
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

fn active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(false)
}

/// The `cache.get` span of a call of `function` on `key`, or a disabled span.
pub(crate) fn call(function: &'static str, cache: Option<&Inner>, key: Option<&str>) -> Span {
    let span = tracing::info_span!(
        target: "redis_cached",
        "cache.get",
        otel.kind = "client",
        db.system.name = Empty,
        server.address = Empty,
        server.port = Empty,
        code.function.name = function,
        cache.key = Empty,
        cache.hit = Empty,
        cache.outcome = Empty,
        cache.item_size = Empty,
        cache.invalidated_by = Empty,
        cache.invalidated_ago_ms = Empty,
        cache.invalidated_trace = Empty,
    );
    if !span.is_disabled() {
        describe(&span, cache);
        let key = match (cache, key) {
            (Some(cache), Some(key)) if cache.spans.raw_keys => key,
            _ => template(function),
        };
        span.record("cache.key", key);
    }
    span
}

/// The `cache.get_many` span of a batch call of `function` over `ids` ids.
pub(crate) fn batch(function: &'static str, cache: Option<&Inner>, ids: usize) -> Span {
    let span = tracing::info_span!(
        target: "redis_cached",
        "cache.get_many",
        otel.kind = "client",
        db.system.name = Empty,
        server.address = Empty,
        server.port = Empty,
        code.function.name = function,
        cache.key = template(function),
        cache.batch.size = count(ids),
        cache.hit = Empty,
        cache.batch.hits = Empty,
        cache.batch.misses = Empty,
    );
    describe(&span, cache);
    span
}

/// The `cache.remove` span of an invalidation by `function` of `keys` (rendered).
pub(crate) fn remove(function: &'static str, cache: &Inner, keys: &[String]) -> Span {
    let span = tracing::info_span!(
        target: "redis_cached",
        "cache.remove",
        otel.kind = "client",
        db.system.name = Empty,
        server.address = Empty,
        server.port = Empty,
        code.function.name = function,
        cache.key = Empty,
        cache.keys = count(keys.len()),
    );
    if !span.is_disabled() {
        describe(&span, Some(cache));
        if cache.spans.raw_keys {
            span.record("cache.key", keys.join(" "));
        } else if let Some(templates) = invalidated_templates(function) {
            span.record("cache.key", templates);
        }
    }
    span
}

/// The `cache.body` span around a body run by the current call, if it has a span.
pub(crate) fn body(function: &'static str) -> Span {
    if !active() {
        return Span::none();
    }
    tracing::info_span!(target: "redis_cached", "cache.body", code.function.name = function)
}

fn describe(span: &Span, cache: Option<&Inner>) {
    if let Some(settings) = cache.map(|cache| &cache.spans)
        && !settings.system.is_empty()
    {
        span.record("db.system.name", settings.system);
        span.record("server.address", settings.address.as_str());
        if let Some(port) = settings.port {
            span.record("server.port", i64::from(port));
        }
    }
}

/// Records a call's outcome in its span (`cache.outcome`, `cache.hit`).
pub(crate) fn outcome(outcome: Outcome) {
    if active() {
        let span = Span::current();
        span.record("cache.outcome", outcome.as_str());
        span.record("cache.hit", is_hit(outcome));
    }
}

/// Records the size of the entry read or written, in bytes (`cache.item_size`).
pub(crate) fn item_size(bytes: usize) {
    if active() {
        Span::current().record("cache.item_size", count(bytes));
    }
}

/// Records a batch's hits and misses in its span.
pub(crate) fn batch_counts(hits: usize, misses: usize) {
    if active() {
        let span = Span::current();
        span.record("cache.batch.hits", count(hits));
        span.record("cache.batch.misses", count(misses));
        span.record("cache.hit", misses == 0);
    }
}

/// Records in the span of a miss what invalidated its key: the invalidating function, how
/// long ago (ms, by the two processes' clocks), and its trace (a W3C `traceparent`); with the
/// `opentelemetry` feature, the span also links to that trace.
pub(crate) fn caused_by(by: &str, ago_ms: u64, trace: Option<&str>) {
    if !active() {
        return;
    }
    let span = Span::current();
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

/// The key template of a cached function, from the registry; its path if unknown.
fn template(function: &'static str) -> &'static str {
    static TEMPLATES: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        crate::registry::functions()
            .cached
            .into_iter()
            .map(|cached| (cached.path, cached.key.text()))
            .collect()
    });
    templates.get(function).copied().unwrap_or(function)
}

/// The key and tag templates (`#`-marked) an `#[invalidates]` function deletes,
/// space-separated; `None` for [`Cache::invalidate`](crate::Cache::invalidate), which has none.
fn invalidated_templates(function: &'static str) -> Option<String> {
    crate::registry::functions()
        .invalidating
        .into_iter()
        .find(|invalidating| invalidating.path == function)
        .map(|invalidating| {
            let tags = invalidating
                .tags
                .iter()
                .map(|tag| format!("#{}", tag.text()));
            let keys = invalidating.keys.iter().map(|key| key.text().to_owned());
            keys.chain(tags).collect::<Vec<_>>().join(" ")
        })
}

pin_project_lite::pin_project! {
    /// A cached call's future in its span: entered on each poll, with [`ACTIVE`] set so that
    /// outcomes and sizes are recorded in it. Without a span, the future is polled as is.
    pub struct Traced<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F> Traced<F> {
    pub(crate) fn new(span: Span, inner: F) -> Traced<F> {
        Traced { inner, span }
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.span.is_disabled() {
            return this.inner.poll(cx);
        }
        let _entered = this.span.enter();
        let was = ACTIVE.try_with(|active| active.replace(true)).ok();
        let polled = this.inner.poll(cx);
        if let Some(was) = was {
            let _ = ACTIVE.try_with(|active| active.set(was));
        }
        polled
    }
}
