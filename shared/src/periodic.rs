//! Background passes on a fixed period, the one shape every maintenance
//! loop of the gateways and workers has (lock renewal, heartbeats,
//! keepalive, sweeps, samples, cleanups, digests): a pass every `period`
//! until cancelled, a slow pass delaying the next instead of causing a
//! burst, and cancellation heard between passes (a pass runs to its end).

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// When the first pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPass {
    /// At once.
    Now,
    /// One period after the start.
    AfterPeriod,
}

/// Runs `pass` every `period` until `cancel` fires.
pub async fn every<F, Fut>(period: Duration, first: FirstPass, cancel: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    if first == FirstPass::AfterPeriod {
        tick.tick().await;
    }
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => pass().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn passes_come_every_period_until_cancelled() {
        for (first, expected) in [(FirstPass::Now, 4), (FirstPass::AfterPeriod, 3)] {
            let passes = Arc::new(AtomicU32::new(0));
            let cancel = CancellationToken::new();
            let counted = Arc::clone(&passes);
            let task = tokio::spawn({
                let cancel = cancel.clone();
                async move {
                    every(Duration::from_secs(10), first, &cancel, || {
                        counted.fetch_add(1, Ordering::SeqCst);
                        std::future::ready(())
                    })
                    .await;
                }
            });
            tokio::time::sleep(Duration::from_secs(35)).await;
            cancel.cancel();
            task.await.unwrap();
            assert_eq!(passes.load(Ordering::SeqCst), expected, "{first:?}");
        }
    }
}
