//! Traces: each request is a span (`GET /employees/{id}`), with the cache's spans inside it
//! (`cache.get`, `cache.body` on a miss, `cache.remove` for a write's invalidation). Exported
//! by OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the exporter reads the
//! standard `OTEL_*` variables); off otherwise.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The OTLP exporter's provider, if `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn otlp_from_env() -> Result<Option<SdkTracerProvider>, String> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|error| format!("cannot export traces to OTEL_EXPORTER_OTLP_ENDPOINT: {error}"))?;
    let resource = Resource::builder()
        .with_service_name("redis-cached-example")
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("redis-cached-example"))
}
