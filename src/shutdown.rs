//! The shutdown signal: SIGTERM or SIGINT starts a graceful drain; a second
//! one ends the process at once.

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A token cancelled on the first SIGTERM or SIGINT.
pub(crate) fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let first = wait_for_signal().await;
        info!(
            signal = first,
            "shutting down gracefully (signal again to stop at once)"
        );
        trigger.cancel();
        let second = wait_for_signal().await;
        warn!(signal = second, "stopping at once");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot listen for SIGTERM: {e}");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
