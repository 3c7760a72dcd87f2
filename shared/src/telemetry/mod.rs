//! Telemetry: structured logs, Prometheus metrics and OpenTelemetry traces.
//!
//! [`init`] sets up `tracing` (JSON in production, readable text on a
//! terminal) and, when an OTLP endpoint is configured, trace export;
//! [`metrics::install`] sets up the Prometheus recorder every role serves
//! on `/metrics`; [`propagation`] carries W3C trace context across the bus
//! in message headers, so one trace follows a turn from socket to worker
//! and back; [`metered_port!`](crate::metered_port) times a port's calls
//! ([`PortTimings`]).

mod catalogue;
mod metered;
pub mod metrics;
pub mod propagation;

pub use metered::PortTimings;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, TelemetryConfig};

/// Keeps trace export alive; flushes pending spans when dropped.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("chatbox: could not flush traces: {e}");
        }
    }
}

/// Installs the global `tracing` subscriber. Call it once, before the
/// async runtime starts (the OTLP exporter runs on its own thread).
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> Result<TelemetryGuard, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG {spec:?}: {e}"))?
        }
        _ => EnvFilter::try_new(&log.level).map_err(|e| format!("chatbox.log.level {:?}: {e}", log.level))?,
    };
    let json = match log.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let fmt_json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    let ansi = std::io::stderr().is_terminal();
    let fmt_text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
    });

    let mut provider = None;
    let otel = if telemetry.otlp_endpoint.is_empty() {
        None
    } else {
        let endpoint = traces_endpoint(&telemetry.otlp_endpoint);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| format!("chatbox.telemetry.otlp_endpoint {endpoint:?}: {e}"))?;
        let sdk = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(telemetry.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = sdk.tracer("chatbox");
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        provider = Some(sdk);
        Some(tracing_opentelemetry::layer().with_tracer(tracer).boxed())
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_json)
        .with(fmt_text)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(TelemetryGuard { provider })
}

/// OTLP/HTTP wants the traces path; the standard variable names the base.
fn traces_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn traces_endpoint_appends_the_signal_path_once() {
        assert_eq!(
            super::traces_endpoint("http://otel:4318"),
            "http://otel:4318/v1/traces"
        );
        assert_eq!(
            super::traces_endpoint("http://otel:4318/v1/traces"),
            "http://otel:4318/v1/traces"
        );
    }
}
