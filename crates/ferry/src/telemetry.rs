//! Logs and traces.
//!
//! Logs: one line per event (text or JSON) with the scheme, run and trace ids carried by spans;
//! filtered by `FERRY_LOG` (default `info`). Traces: when `FERRY_OTLP_ENDPOINT` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans go to an OTLP collector over HTTP/protobuf. The
//! OpenTelemetry layer has its own filter, so a quiet log level never drops the messaging spans
//! that carry the trace from stage to stage (STACK.md).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::cli::LogFormat;

/// Keeps the tracer provider alive; call [`Telemetry::shutdown`] on exit so the last spans are sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("ferry: flushing traces failed: {e}");
        }
    }
}

/// The OTLP endpoint: `FERRY_OTLP_ENDPOINT` (a base URL; `/v1/traces` is added when it has no
/// path) or the config's, else none; `OTEL_EXPORTER_OTLP_ENDPOINT` is read by the exporter itself.
fn endpoint(configured: Option<&str>) -> Option<String> {
    let base = std::env::var("FERRY_OTLP_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| configured.map(str::to_string))?;
    let trimmed = base.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .map(|(_, rest)| rest.contains('/'))
        .unwrap_or(false);
    Some(if has_path {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v1/traces")
    })
}

/// Whether log lines are coloured: only on a terminal, and never with `NO_COLOR` set (a file, a
/// pipe, `docker logs` and CI logs get plain text).
fn colours(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

/// Start logging and tracing. `default_level` applies when `FERRY_LOG` is not set: `info` for the
/// roles, `warn` for one-shot commands whose output is the point (`status`, `replay`).
pub fn init(
    format: LogFormat,
    service: &str,
    configured_endpoint: Option<&str>,
    default_level: &str,
) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter =
        EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colours(
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            ))
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);

    let explicit = endpoint(configured_endpoint);
    let wanted = explicit.is_some() || std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    // A provider always exists, so every page and batch gets a trace id that travels in the AMQP
    // headers (and shows in dead letters) even when nothing is exported.
    let provider = wanted
        .then(|| build_provider(service, explicit.as_deref()))
        .flatten()
        .unwrap_or_else(|| SdkTracerProvider::builder().build());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("ferry"))
        .with_filter(LevelFilter::INFO);
    let _ = Registry::default().with(otel).with(fmt).try_init();
    Telemetry {
        provider: Some(provider),
    }
}

/// Put the span's trace id into its `trace_id` field, so every log line inside it carries the
/// id that Jaeger (or any OTLP backend) shows for the trace.
pub fn record_trace_id(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

fn build_provider(service: &str, endpoint: Option<&str>) -> Option<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let grpc = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|p| p.starts_with("grpc"));
    #[cfg(feature = "otlp-grpc")]
    if grpc {
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = endpoint {
            // gRPC takes the collector's base address (port 4317), without the HTTP path.
            builder = builder.with_endpoint(endpoint.trim_end_matches("/v1/traces"));
        }
        return finish_provider(service, builder.build());
    }
    #[cfg(not(feature = "otlp-grpc"))]
    if grpc {
        eprintln!(
            "ferry: OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a build with `--features otlp-grpc`; exporting over \
             HTTP/protobuf instead (point the endpoint at the collector's HTTP port, usually 4318)"
        );
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    finish_provider(service, builder.build())
}

fn finish_provider(
    service: &str,
    exporter: Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError>,
) -> Option<SdkTracerProvider> {
    let exporter = match exporter {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ferry: tracing disabled: cannot build the OTLP exporter: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_string());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    #[test]
    fn spans_carry_a_valid_trace_context_without_an_exporter() {
        let telemetry = super::init(crate::cli::LogFormat::Text, "ferry-test", None, "info");
        let span = tracing::info_span!("ferry.extract", scheme = "s");
        let _entered = span.enter();
        let cx = tracing::Span::current().context();
        assert!(
            cx.span().span_context().is_valid(),
            "{:?}",
            cx.span().span_context()
        );
        let mut headers = ferry_bus::Headers::default();
        ferry_bus::trace::inject(&cx, &mut headers);
        let parent = headers.traceparent.expect("traceparent injected");
        assert!(
            parent.starts_with("00-") && parent.ends_with("-01"),
            "{parent}"
        );
        drop(_entered);
        telemetry.shutdown();
    }
}
