//! W3C trace context in bus headers (`traceparent`, `tracestate`).
//!
//! Without trace export configured the global propagator is a no-op, so
//! these cost nothing.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::bus::Headers;

struct HeaderInjector<'a>(&'a mut Headers);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value);
    }
}

struct HeaderExtractor<'a>(&'a Headers);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k).collect()
    }
}

/// Writes the current span's trace context into `headers`.
pub fn inject_current(headers: &mut Headers) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut HeaderInjector(headers))
    });
}

/// Makes the trace context in `headers` the parent of `span`.
pub fn adopt_parent(span: &tracing::Span, headers: &Headers) {
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // Fails only for a span that is disabled or already started: it then
    // simply keeps the parent it has.
    let _ = span.set_parent(parent);
}
