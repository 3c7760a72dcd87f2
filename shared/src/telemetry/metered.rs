//! Timing of the ports. [`metered_port!`](crate::metered_port) writes a
//! decorator for a port trait: a struct wrapping any adapter, whose every
//! listed method goes to the adapter and is recorded in a histogram
//! `<metric>{adapter, op, outcome}` (`outcome` = `ok` or `error`). The bus,
//! the coordinator and the store are each wrapped once where the process
//! opens them, so their latency and errors show per operation whatever the
//! adapter. Each histogram is resolved once, on its first use: later calls
//! (every published chunk, say) only look their operation up and record.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Histogram;

/// The histograms of one wrapped port: per operation, `ok` and `error`,
/// each resolved on its first use (so only the series that happen are
/// exported) and kept.
pub struct PortTimings {
    metric: &'static str,
    adapter: &'static str,
    by_op: HashMap<&'static str, [OnceLock<Histogram>; 2]>,
}

impl PortTimings {
    /// Timings of `metric{adapter, op, outcome}` for each of `ops`.
    pub fn new(metric: &'static str, adapter: &'static str, ops: &[&'static str]) -> PortTimings {
        PortTimings {
            metric,
            adapter,
            by_op: ops.iter().map(|&op| (op, Default::default())).collect(),
        }
    }

    /// Records one call of `op`.
    pub fn record(&self, op: &'static str, ok: bool, elapsed: Duration) {
        let Some(histograms) = self.by_op.get(op) else {
            return;
        };
        let (slot, outcome) = if ok {
            (&histograms[0], "ok")
        } else {
            (&histograms[1], "error")
        };
        let (metric, adapter) = (self.metric, self.adapter);
        slot.get_or_init(
            || metrics::histogram!(metric, "adapter" => adapter, "op" => op, "outcome" => outcome),
        )
        .record(elapsed.as_secs_f64());
    }
}

/// Writes `$wrapper`, a struct holding an `Arc<dyn $port>`, with `new`,
/// and its implementation of `$port`: each listed method is delegated and
/// timed into `$metric`. The port must have `fn adapter(&self) ->
/// &'static str`.
#[macro_export]
macro_rules! metered_port {
    (
        $(#[$doc:meta])*
        $wrapper:ident: $port:path, $metric:literal;
        $( async fn $op:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*
    ) => {
        $(#[$doc])*
        pub struct $wrapper {
            inner: std::sync::Arc<dyn $port>,
            timings: $crate::telemetry::PortTimings,
        }

        impl $wrapper {
            /// Times every call to `inner`.
            pub fn new(inner: std::sync::Arc<dyn $port>) -> $wrapper {
                let timings = $crate::telemetry::PortTimings::new(
                    $metric,
                    inner.adapter(),
                    &[$(stringify!($op)),*],
                );
                $wrapper { inner, timings }
            }
        }

        #[async_trait::async_trait]
        impl $port for $wrapper {
            fn adapter(&self) -> &'static str {
                self.inner.adapter()
            }

            $(
                async fn $op(&self $(, $arg: $ty)*) -> $ret {
                    let started = std::time::Instant::now();
                    let result = self.inner.$op($($arg),*).await;
                    self.timings.record(stringify!($op), result.is_ok(), started.elapsed());
                    result
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn calls_are_recorded_per_operation_and_outcome_and_only_what_happened_is_exported() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let timings = PortTimings::new("test_port_seconds", "memory", &["publish", "flush"]);
            timings.record("publish", true, Duration::from_millis(2));
            timings.record("publish", true, Duration::from_millis(3));
            timings.record("publish", false, Duration::from_millis(1));
            timings.record("unknown", true, Duration::from_millis(1));
        });
        let text = handle.render();
        let count = |labels: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("test_port_seconds_count{{{labels}}} ")))
                .map(str::to_owned)
        };
        assert_eq!(
            count(r#"adapter="memory",op="publish",outcome="ok""#).as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            count(r#"adapter="memory",op="publish",outcome="error""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(
            !text.contains(r#"op="flush""#),
            "unused operations are not exported: {text}"
        );
        assert!(!text.contains(r#"op="unknown""#), "{text}");
    }
}
