//! Starting an answer: the chosen model, tried again while it fails before
//! its first token, then its fallbacks.
//!
//! An attempt counts as started once the first text arrives — only then
//! has anything reached the user, so until then a failure is invisible and
//! may be retried (with [`retry::delay`], honouring `Retry-After` up to
//! `max_retry_after`, and `x-should-retry` either way). Each attempt asks
//! the provider's circuit breaker first; an open breaker skips straight to
//! the fallback. A provider that still fails hands over to its `fallback`,
//! and so on down the chain. A [`Refusal`](super::Refusal) (quota, key,
//! model) is not retried and is counted apart; a first token slower than
//! `first_token_timeout` is not retried unless `slow_first_token` says so,
//! and neither counts against the breaker. What failed last is what the
//! user hears about.

use chatbox_shared::config::RetryConfig;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::breaker::Breaker;
use super::retry;
use super::{FIRST_TOKEN, LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream, Model, Providers};
use crate::metrics;

/// An answer under way: its first text has arrived.
pub struct Started {
    /// The provider answering.
    pub provider: Arc<dyn LlmProvider>,
    /// Its breaker (a failure midway still counts).
    pub breaker: Arc<Breaker>,
    /// The events read so far, ending with the first text (or the whole
    /// answer, if it had no text).
    pub head: Vec<LlmEvent>,
    /// The rest of the answer.
    pub stream: LlmStream,
    /// The model the user chose, when a fallback answers instead.
    pub fell_back_from: Option<String>,
}

/// Starts an answer from `model`, or from its fallbacks.
pub async fn dispatch(
    providers: &Providers,
    model: &Model,
    request: &LlmRequest,
    retry: &RetryConfig,
) -> Result<Started, LlmError> {
    let mut tried: Vec<&str> = Vec::new();
    let mut current = Some(model);
    let mut last_error = None;
    while let Some(m) = current {
        tried.push(m.id());
        match start_with(m, request, retry).await {
            Ok(mut started) => {
                if m.id() != model.id() {
                    metrics::llm_fallback(model.id(), m.id());
                    info!(
                        chosen = model.id(),
                        answering = m.id(),
                        "a fallback provider answers"
                    );
                    started.fell_back_from = Some(model.id().to_owned());
                }
                return Ok(started);
            }
            Err(e) => last_error = Some(e),
        }
        current = m
            .fallback
            .as_deref()
            .filter(|id| !tried.contains(id))
            .and_then(|id| providers.select(Some(id)));
        if let (Some(next), Some(e)) = (current, &last_error) {
            warn!(
                provider = m.id(),
                fallback = next.id(),
                "provider failed, trying its fallback: {e}"
            );
        }
    }
    Err(last_error.unwrap_or_else(|| LlmError::Unsupported("no model to answer".into())))
}

/// Tries one provider, with retries.
async fn start_with(model: &Model, request: &LlmRequest, retry: &RetryConfig) -> Result<Started, LlmError> {
    let id = model.id();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let permit = match model.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(wait) => {
                metrics::llm_request(id, "breaker_open");
                return Err(LlmError::Open(wait));
            }
        };
        match first_text(model.provider.as_ref(), request).await {
            Ok((head, stream)) => {
                permit.succeeded();
                metrics::llm_request(id, "ok");
                return Ok(Started {
                    provider: Arc::clone(&model.provider),
                    breaker: Arc::clone(&model.breaker),
                    head,
                    stream,
                    fell_back_from: None,
                });
            }
            Err(e) => {
                metrics::llm_request(id, e.kind());
                if e.counts_against_provider() {
                    permit.failed(&e);
                } else {
                    drop(permit);
                }
                if let Some(refusal) = e.refusal() {
                    metrics::llm_refusal(id, refusal.as_str());
                    error!(
                        provider = id,
                        reason = refusal.as_str(),
                        "the provider refuses the request; waiting cannot fix it: {e}"
                    );
                }
                let asked = e.retry_after();
                let again = worth_retrying(&e, retry)
                    && attempt < retry.attempts
                    && asked.is_none_or(|wait| wait <= retry.max_retry_after);
                if !again {
                    return Err(e);
                }
                let wait = retry::delay(retry, attempt, asked);
                metrics::llm_retry(id);
                warn!(
                    provider = id,
                    attempt,
                    ?wait,
                    "model request failed before its first token; trying again: {e}"
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Whether asking the same provider again may work: the provider's own
/// word (`x-should-retry`) when it gave one, else whether the failure is
/// transient — but a model slower than its `first_token_timeout` is not
/// sent a second, paid, request unless `slow_first_token` says so.
fn worth_retrying(e: &LlmError, retry: &RetryConfig) -> bool {
    if e.is_slow_first_token() {
        return retry.slow_first_token;
    }
    e.should_retry().unwrap_or_else(|| e.is_transient())
}

/// Sends the request and reads up to the first text (or the first sign
/// that an agent is at work, which the user sees too), within the
/// first-token timeout — extended by the idle timeout each time the
/// provider shows it is alive (a ping, a workflow step).
async fn first_text(
    provider: &dyn LlmProvider,
    request: &LlmRequest,
) -> Result<(Vec<LlmEvent>, LlmStream), LlmError> {
    let mut deadline = Instant::now() + provider.first_token_timeout();
    let timed_out = || LlmError::Timeout(FIRST_TOKEN);
    // Fused: an answer without text has ended already, and is read again.
    let mut stream = tokio::time::timeout_at(deadline, provider.stream(request))
        .await
        .map_err(|_| timed_out())??
        .fuse();
    let mut head = Vec::new();
    loop {
        let Some(event) = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| timed_out())?
        else {
            break;
        };
        let event = event?;
        // Only text (and an agent's work) reaches the user while the
        // answer streams; audio and files are delivered at its end, so
        // they start nothing.
        let started = matches!(event, LlmEvent::Delta(_) | LlmEvent::Working(_));
        if matches!(event, LlmEvent::KeepAlive) {
            deadline = deadline.max(Instant::now() + provider.idle_timeout());
            continue;
        }
        head.push(event);
        if started {
            break;
        }
    }
    Ok((head, stream.boxed()))
}
