//! Timing of the ports. [`metered_port!`](crate::metered_port) writes a
//! decorator's implementation of a port trait: every listed method goes to
//! the wrapped adapter and is recorded in a histogram
//! `<metric>{adapter, op, outcome}` (`outcome` = `ok` or `error`). The bus,
//! the coordinator and the store are each wrapped once where the process
//! opens them, so their latency and errors show per operation whatever the
//! adapter.

use std::time::Duration;

/// Records one call to a port.
pub fn record(metric: &'static str, adapter: &'static str, op: &'static str, ok: bool, elapsed: Duration) {
    metrics::histogram!(
        metric,
        "adapter" => adapter,
        "op" => op,
        "outcome" => if ok { "ok" } else { "error" }
    )
    .record(elapsed.as_secs_f64());
}

/// Implements `$port` for `$wrapper` (a struct with an `inner: Arc<dyn
/// $port>` field) by delegating each listed method and timing it into
/// `$metric`. The port must have `fn adapter(&self) -> &'static str`.
#[macro_export]
macro_rules! metered_port {
    (
        $wrapper:ty: $port:path, $metric:literal;
        $( async fn $op:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*
    ) => {
        #[async_trait::async_trait]
        impl $port for $wrapper {
            fn adapter(&self) -> &'static str {
                self.inner.adapter()
            }

            $(
                async fn $op(&self $(, $arg: $ty)*) -> $ret {
                    let started = std::time::Instant::now();
                    let result = self.inner.$op($($arg),*).await;
                    $crate::telemetry::metered::record(
                        $metric,
                        self.inner.adapter(),
                        stringify!($op),
                        result.is_ok(),
                        started.elapsed(),
                    );
                    result
                }
            )*
        }
    };
}
