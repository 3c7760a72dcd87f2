//! A turn: one inbound message, from the queue to the acknowledgement.
//!
//! Wait until every earlier message of the session is done (session
//! order); store the user's message (once: a redelivered turn finds it)
//! and echo it with its sequence number; switch the loading indicator on;
//! stream the model's answer — given the session's earlier messages within
//! the context budget — as `ai_response` chunks under one `message_id`;
//! store the whole answer with its tokens and timing and update the
//! session's totals; send the final frame (`done: true`, the whole text);
//! switch loading off; then — last — ack the inbound message. While
//! storage fails nothing is acked: the message comes back until it can be
//! stored. A worker that dies before the ack leaves the
//! message to be redelivered to another worker, which streams the answer
//! again under the same `message_id` (the `loading` frame tells the
//! client to drop the partial text it holds).

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::bus::InboundDelivery;
use chatbox_shared::envelope::{Audience, InboundBody, InboundEnvelope};
use chatbox_shared::ids::answer_id;
use chatbox_shared::protocol::outbound::{self, AnswerStats};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, MessageType, Sender, Timestamp};
use chatbox_shared::telemetry::propagation;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::llm::{ChatMessage, ChatRole, LlmError, LlmEvent, LlmProvider, LlmRequest, estimate_tokens};
use crate::state::WorkerState;
use crate::store::{MessageRecord, SessionPatch, StoreError, TurnView};
use crate::{history, metrics, session_name};

/// How a turn ends for the inbound queue.
enum Settle {
    /// Done (answered, or refused with an error the user saw).
    Ack,
    /// Not done: deliver the message again after the delay.
    Retry(Duration),
}

struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::in_flight(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::in_flight(-1.0);
    }
}

/// Processes one delivery to its settlement.
pub async fn process(state: Arc<WorkerState>, delivery: InboundDelivery, hard_stop: CancellationToken) {
    let _in_flight = InFlight::start();
    let envelope = match serde_json::from_slice::<InboundEnvelope>(&delivery.payload) {
        Ok(envelope)
            if state.subjects.session_of_inbound(&delivery.subject) == Some(envelope.session_id.as_str()) =>
        {
            envelope
        }
        Ok(_) => {
            error!(subject = %delivery.subject, "inbound message names another session than its subject; dropped");
            metrics::turn("rejected");
            let _ = delivery.ack().await;
            return;
        }
        Err(e) => {
            error!(subject = %delivery.subject, "unreadable inbound message; dropped: {e}");
            metrics::turn("rejected");
            let _ = delivery.ack().await;
            return;
        }
    };
    let span = info_span!(
        "turn",
        pod_id = %state.pod_id,
        session_id = %envelope.session_id,
        user_id = %envelope.user_id,
        message_id = %envelope.message_id,
        delivery = delivery.delivery_count,
    );
    propagation::adopt_parent(&span, &delivery.headers);
    settle_turn(state, delivery, envelope, hard_stop)
        .instrument(span)
        .await;
}

async fn settle_turn(
    state: Arc<WorkerState>,
    delivery: InboundDelivery,
    envelope: InboundEnvelope,
    hard_stop: CancellationToken,
) {
    let worker = &state.config.chatbox.worker;
    if delivery.delivery_count > 1 {
        metrics::redelivery();
    }
    let waiting = Instant::now();
    match tokio::time::timeout(worker.ack_wait, delivery.wait_turn()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            metrics::bus_error("wait_turn");
            warn!("cannot tell whether earlier messages are done: {e}");
            let _ = delivery.nak(Some(Duration::from_millis(500))).await;
            return;
        }
        Err(_) => {
            debug!("an earlier message of the session is still running; later");
            let _ = delivery.nak(Some(Duration::from_millis(200))).await;
            return;
        }
    }
    let waited = waiting.elapsed();
    metrics::turn_wait(waited.as_secs_f64());
    if delivery.delivery_count > 1 || waited > Duration::from_secs(5) {
        // The session's gateway may have stopped listening meanwhile.
        state.outbox.attach(&envelope.session_id).await;
    }

    let work = tokio::time::timeout(
        worker.turn_timeout,
        run(&state, &envelope, delivery.delivery_count),
    );
    tokio::pin!(work);
    let mut progress = tokio::time::interval(worker.ack_wait / 3);
    progress.tick().await;
    let settle = loop {
        tokio::select! {
            outcome = &mut work => break match outcome {
                Ok(settle) => settle,
                Err(_) => {
                    warn!(timeout = ?worker.turn_timeout, "turn took too long; abandoned");
                    metrics::turn("timeout");
                    let info = ErrorInfo::new(ErrorCode::LlmUnavailable, "the answer took too long and was abandoned; please try again");
                    let _ = state.outbox.send(&envelope.session_id, &outbound::error(Some(&envelope.session_id), info), Audience::All).await;
                    Settle::Ack
                }
            },
            _ = progress.tick() => {
                if let Err(e) = delivery.progress().await {
                    warn!("cannot extend the turn's lease: {e}");
                }
            }
            _ = hard_stop.cancelled() => {
                info!("shutting down mid-turn; handing the message to another worker");
                let _ = delivery.nak(None).await;
                return;
            }
        }
    };
    match settle {
        Settle::Ack => {
            if let Err(e) = delivery.ack().await {
                metrics::bus_error("ack");
                warn!("turn done but not acknowledged (it may run again): {e}");
            }
        }
        Settle::Retry(delay) => {
            let _ = delivery.nak(Some(delay)).await;
        }
    }
}

async fn run(state: &WorkerState, envelope: &InboundEnvelope, attempt: u64) -> Settle {
    let result = match &envelope.body {
        InboundBody::UserMessage {
            content, model_id, ..
        } => user_turn(state, envelope, content, model_id.as_deref()).await,
    };
    match result {
        Ok(settle) => settle,
        Err(e) => {
            // Nothing is acked while storage fails: the message comes back
            // and is answered once the database is back. Say so once.
            metrics::turn("store_error");
            warn!(attempt, "storage failed; the message will be retried: {e}");
            if attempt == 1 {
                let info = ErrorInfo::new(
                    ErrorCode::DatabaseError,
                    "your message is safe but cannot be answered right now; it will be answered as soon as storage is back",
                )
                .retry_after(STORE_RETRY);
                let sid = envelope.session_id.as_str();
                let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
                let _ = state.outbox.send(sid, &frame, Audience::User).await;
            }
            Settle::Retry(STORE_RETRY)
        }
    }
}

/// How long a turn waits before it tries storage again.
const STORE_RETRY: Duration = Duration::from_secs(2);

/// Earlier messages a turn reads for context, at most.
const CONTEXT_MESSAGES: usize = 50;

async fn user_turn(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    content: &str,
    model_id: Option<&str>,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let outbox = &state.outbox;
    let store = state.store.as_ref();
    let reject = |code: ErrorCode, message: String| async move {
        let frame = outbound::error_reply(
            envelope.client_id.as_deref(),
            Some(sid),
            ErrorInfo::new(code, message),
        );
        let _ = outbox.send(sid, &frame, Audience::User).await;
        metrics::turn("rejected");
        Ok(Settle::Ack)
    };
    let answer = answer_id(sid, &envelope.message_id);
    let Some(view) = store
        .turn_view(sid, &envelope.message_id, &answer, CONTEXT_MESSAGES)
        .await?
    else {
        return reject(
            ErrorCode::SessionNotFound,
            "this conversation does not exist; reconnect".into(),
        )
        .await;
    };
    let TurnView {
        mut session,
        user_message,
        answer: stored_answer,
        mut last_seq,
        earlier,
    } = view;
    let Some(provider) = state.providers.select(model_id) else {
        let known: Vec<&str> = state.providers.all().iter().map(|p| p.id()).collect();
        let message = format!(
            "unknown model {:?}; choose one of: {}",
            model_id.unwrap_or_default(),
            known.join(", ")
        );
        return reject(ErrorCode::InvalidField, message).await;
    };

    // The user's message, stored once: a redelivered turn finds it.
    let user_message = match user_message {
        Some(stored) => stored,
        None => {
            if !session.is_active {
                return reject(
                    ErrorCode::SessionEnded,
                    "this conversation has ended; reconnect to start a new one".into(),
                )
                .await;
            }
            last_seq += 1;
            let record = MessageRecord {
                session_id: sid.to_owned(),
                seq: last_seq,
                message_id: envelope.message_id.clone(),
                client_id: envelope.client_id.clone(),
                sender: envelope.sender,
                kind: MessageType::UserMessage,
                content: content.to_owned(),
                file_id: None,
                model_id: None,
                timestamp: envelope.received_at,
                metadata: None,
                tokens: None,
            };
            session.counters.message_count += 1;
            let name = session
                .name
                .is_empty()
                .then(|| session_name::from_first_message(content));
            let patch = SessionPatch {
                last_activity: Some(Timestamp::now()),
                name,
                counters: Some(session.counters),
                is_active: None,
            };
            store.record_message(&record, &patch).await?;
            record
        }
    };
    let echo = history::frame(&user_message);
    // Answered already (a redelivery after the answer was stored): send it
    // again for a client that may have missed it, and nothing more.
    if let Some(stored) = stored_answer {
        let _ = outbox.send(sid, &echo, Audience::All).await;
        let _ = outbox.send(sid, &history::frame(&stored), Audience::All).await;
        metrics::turn("ok");
        return Ok(Settle::Ack);
    }
    let _ = outbox.send(sid, &echo, Audience::All).await;
    let _ = outbox
        .send(sid, &outbound::loading(sid, &answer, true), Audience::All)
        .await;

    let mut messages = history::context(&earlier, state.config.chatbox.llm.context_tokens);
    messages.push(ChatMessage {
        role: ChatRole::User,
        content: content.to_owned(),
    });
    let request = LlmRequest { messages, user: None };
    let prompt_estimate: u64 = request.messages.iter().map(|m| estimate_tokens(&m.content)).sum();
    let started = Instant::now();
    let mut streamed = Streamed::default();
    let result = stream_answer(
        state,
        provider.as_ref(),
        request,
        sid,
        &answer,
        started,
        &mut streamed,
    )
    .await;
    let elapsed = started.elapsed();
    metrics::turn_timing(
        provider.id(),
        elapsed.as_secs_f64(),
        streamed.first_token.map(|d| d.as_secs_f64()),
    );
    let settle = match result {
        Ok(()) => {
            let stats = AnswerStats {
                prompt_tokens: streamed.prompt_tokens.unwrap_or(prompt_estimate),
                completion_tokens: streamed
                    .completion_tokens
                    .unwrap_or_else(|| estimate_tokens(&streamed.text)),
                first_token_ms: streamed.first_token.map(millis).unwrap_or_default(),
                response_time_ms: millis(elapsed),
            };
            let seq = last_seq + 1;
            let done = outbound::ai_final(sid, &answer, Some(seq), streamed.text, provider.id(), &stats);
            let tokens = stats.prompt_tokens + stats.completion_tokens;
            session.counters.add_answer(tokens, stats.response_time_ms);
            let patch = SessionPatch {
                last_activity: Some(Timestamp::now()),
                counters: Some(session.counters),
                ..SessionPatch::default()
            };
            store
                .record_message(
                    &MessageRecord {
                        session_id: sid.to_owned(),
                        seq,
                        message_id: answer.clone(),
                        client_id: None,
                        sender: Sender::Ai,
                        kind: MessageType::AiResponse,
                        content: done.content.clone().unwrap_or_default(),
                        file_id: None,
                        model_id: Some(provider.id().to_owned()),
                        timestamp: done.timestamp.unwrap_or_else(Timestamp::now),
                        metadata: done.metadata.clone(),
                        tokens: Some(tokens),
                    },
                    &patch,
                )
                .await?;
            let _ = outbox.send(sid, &done, Audience::All).await;
            metrics::turn("ok");
            metrics::tokens(provider.id(), stats.prompt_tokens, stats.completion_tokens);
            info!(
                provider = provider.id(),
                response_ms = stats.response_time_ms,
                first_token_ms = stats.first_token_ms,
                completion_tokens = stats.completion_tokens,
                "answered"
            );
            Settle::Ack
        }
        Err(e) => {
            warn!(
                provider = provider.id(),
                partial_chars = streamed.text.len(),
                "the model failed: {e}"
            );
            let message = match e {
                LlmError::Timeout(_) => "the assistant did not answer in time; please try again",
                _ => "the assistant could not answer right now; please try again",
            };
            let info = ErrorInfo::new(ErrorCode::LlmUnavailable, message);
            let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
            let _ = outbox.send(sid, &frame, Audience::All).await;
            metrics::turn("llm_error");
            Settle::Ack
        }
    };
    let _ = outbox
        .send(sid, &outbound::loading(sid, &answer, false), Audience::All)
        .await;
    Ok(settle)
}

/// What has come out of the model so far.
#[derive(Default)]
struct Streamed {
    text: String,
    first_token: Option<Duration>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl Streamed {
    /// Keeps the token counts of a usage event.
    fn record(&mut self, event: LlmEvent) {
        if let LlmEvent::Usage {
            prompt_tokens,
            completion_tokens,
        } = event
        {
            self.prompt_tokens = Some(prompt_tokens);
            self.completion_tokens = Some(completion_tokens);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn stream_answer(
    state: &WorkerState,
    provider: &dyn LlmProvider,
    request: LlmRequest,
    sid: &str,
    answer: &str,
    started: Instant,
    streamed: &mut Streamed,
) -> Result<(), LlmError> {
    let window = state.config.chatbox.worker.chunk_window;
    let first_deadline = started + provider.first_token_timeout();
    let mut stream = tokio::time::timeout_at(first_deadline, provider.stream(request))
        .await
        .map_err(|_| LlmError::Timeout("first token"))??;
    let mut ended = false;
    while !ended {
        let deadline = match streamed.first_token {
            None => first_deadline,
            Some(_) => Instant::now() + provider.idle_timeout(),
        };
        let event = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) if streamed.first_token.is_none() => return Err(LlmError::Timeout("first token")),
            Err(_) => return Err(LlmError::Timeout("between tokens")),
            Ok(None) => return Ok(()),
            Ok(Some(event)) => event?,
        };
        let LlmEvent::Delta(mut delta) = event else {
            streamed.record(event);
            continue;
        };
        streamed.first_token.get_or_insert_with(|| started.elapsed());
        let mut failure = None;
        if !window.is_zero() {
            // Text that follows within the window joins this frame.
            let flush_at = Instant::now() + window;
            loop {
                match tokio::time::timeout_at(flush_at, stream.next()).await {
                    Err(_) => break,
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Ok(Some(Ok(LlmEvent::Delta(more)))) => delta.push_str(&more),
                    Ok(Some(Ok(usage))) => streamed.record(usage),
                    Ok(Some(Err(e))) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        streamed.text.push_str(&delta);
        let chunk = outbound::ai_chunk(sid, answer, delta);
        let _ = state.outbox.send(sid, &chunk, Audience::All).await;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(())
}
