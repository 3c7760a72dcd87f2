//! A turn: one inbound message, from the queue to the acknowledgement.
//!
//! Wait until every earlier message of the session is done (session
//! order); store the user's message (once: a redelivered turn finds it)
//! and echo it with its sequence number; switch the loading indicator on;
//! stream the model's answer ([`answer`]) — the message's model, else the
//! session's choice, else the default; given the session's earlier
//! messages within the context budget — as `ai_response` chunks under one
//! `message_id`; store the answer with its tokens, timing and how it
//! ended (`finish_reason`: `complete`, `stopped`, `user_left`,
//! `interrupted`: a stopped or broken-off answer keeps the part the user
//! saw) and update the session's totals; send the final frame (`done:
//! true`, the whole text); switch loading off; then — last — ack the
//! inbound message. An answer that fails before its first token stores
//! nothing and tells the user (`LLM_UNAVAILABLE`, with `retry_after` when
//! the provider named one).
//!
//! While storage fails nothing is acked: the message comes back until it
//! can be stored; the user and the admins (a `database_failure`
//! notification) hear about it on the first attempt. A worker that dies before the ack leaves the message to
//! be redelivered to another worker, which streams the answer again under
//! the same `message_id` (the `loading` frame tells the client to drop the
//! partial text it holds).
//!
//! A `file_upload` or `voice_message` is a user message whose file is
//! taken in first ([`uploads::intake`]: checked, moved out of quarantine;
//! a voice message transcribed): a refused file is an error and nothing
//! is stored; while the file store fails the message waits, like while the
//! database does. The model gets the file as the provider takes it
//! ([`uploads::prompt`]); audio and files that come with the answer are
//! kept or linked ([`uploads::generated`]).
//!
//! A `model_select` is a turn too, so it takes effect in order: the
//! messages sent after it use the new model.

use std::sync::Arc;
use std::time::Duration;

use chatbox_shared::bus::InboundDelivery;
use chatbox_shared::coordinator::AdminHolder;
use chatbox_shared::envelope::{Audience, InboundBody, InboundEnvelope};
use chatbox_shared::ids::answer_id;
use chatbox_shared::protocol::outbound::{self, AnswerStats};
use chatbox_shared::protocol::{ErrorCode, ErrorInfo, MessageType, Sender, Timestamp};
use chatbox_shared::telemetry::propagation;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::answer::{self, End};
use crate::llm::{ChatMessage, ChatRole, LlmError, LlmRequest, estimate_tokens};
use crate::notify::{Alert, EventKind};
use crate::state::WorkerState;
use crate::store::{FileKind, FileRecord, MessageRecord, SessionPatch, StoreError, TurnView};
use crate::uploads::intake::{self, IntakeError};
use crate::uploads::meta;
use crate::uploads::voice::{self, Transcript};
use crate::uploads::{self, generated, links, prompt};
use crate::{history, metrics, session_name, staff_turns};

/// How a turn ends for the inbound queue.
pub(crate) enum Settle {
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
        } => {
            let input = Input::Text {
                content,
                model_id: model_id.as_deref(),
            };
            user_turn(state, envelope, input, attempt).await
        }
        InboundBody::FileUpload { file_id, content } => {
            let input = Input::File {
                file_id,
                caption: content.as_deref().unwrap_or_default(),
            };
            user_turn(state, envelope, input, attempt).await
        }
        InboundBody::VoiceMessage { file_id } => {
            user_turn(state, envelope, Input::Voice { file_id }, attempt).await
        }
        InboundBody::ModelSelect { model_id } => select_model(state, envelope, model_id).await,
        InboundBody::HelpRequest { content } => {
            staff_turns::help_request(state, envelope, content.as_deref()).await
        }
        InboundBody::AdminJoin {
            admin_id,
            admin_name,
            since,
        } => staff_turns::admin_join(state, envelope, holder(admin_id, admin_name, *since)).await,
        InboundBody::AdminLeave {
            admin_id,
            admin_name,
            since,
            reason,
        } => staff_turns::admin_leave(state, envelope, holder(admin_id, admin_name, *since), *reason).await,
        InboundBody::AdminMessage { content } => staff_turns::admin_message(state, envelope, content).await,
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
                let alert = Alert::new(
                    EventKind::DatabaseFailure,
                    "a message cannot be stored; it waits in the queue until storage is back",
                    format!("Store: {}\nError: {e}", state.store.adapter()),
                    state.pod_id.as_str(),
                )
                .affecting(1)
                .about(sid, envelope.user_id.as_str());
                state.notifications.notify(alert);
            }
            Settle::Retry(STORE_RETRY)
        }
    }
}

fn holder(admin_id: &str, admin_name: &str, since: Timestamp) -> AdminHolder {
    AdminHolder {
        admin_id: admin_id.to_owned(),
        admin_name: admin_name.to_owned(),
        since,
    }
}

/// How long a turn waits before it tries storage again.
const STORE_RETRY: Duration = Duration::from_secs(2);

/// Earlier messages a turn reads for context, at most.
const CONTEXT_MESSAGES: usize = 50;

/// What the user sent: text, a file, or a voice message.
#[derive(Clone, Copy)]
enum Input<'a> {
    Text {
        content: &'a str,
        model_id: Option<&'a str>,
    },
    File {
        file_id: &'a str,
        caption: &'a str,
    },
    Voice {
        file_id: &'a str,
    },
}

async fn user_turn(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    input: Input<'_>,
    attempt: u64,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let outbox = &state.outbox;
    let store = state.store.as_ref();
    let refuse = |info: ErrorInfo| async move {
        let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
        let _ = outbox.send(sid, &frame, Audience::User).await;
        metrics::turn("rejected");
        Ok(Settle::Ack)
    };
    let reject = |code: ErrorCode, message: String| refuse(ErrorInfo::new(code, message));
    let model_id = match input {
        Input::Text { model_id, .. } => model_id,
        Input::File { .. } | Input::Voice { .. } => None,
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
    // The message's own model, else the session's choice, else the default.
    let model = match model_id {
        Some(id) => match state.providers.select(Some(id)) {
            Some(model) => model,
            None => return reject(ErrorCode::InvalidField, unknown_model(state, id)).await,
        },
        None => match state.providers.for_session(session.model_id.as_deref()) {
            Some(model) => model,
            None => return reject(ErrorCode::LlmUnavailable, "no model is configured".into()).await,
        },
    };

    // The user's message, stored once: a redelivered turn finds it.
    let (user_message, file) = match user_message {
        Some(stored) => {
            let file = match &stored.file_id {
                Some(id) => store.file(id).await?,
                None => None,
            };
            (stored, file)
        }
        None => {
            if !session.is_active {
                return reject(
                    ErrorCode::SessionEnded,
                    "this conversation has ended; reconnect to start a new one".into(),
                )
                .await;
            }
            let said = match said(state, envelope, input).await {
                Ok(said) => said,
                Err(IntakeError::Refused(info)) => return refuse(info).await,
                Err(IntakeError::Store(e)) => return Err(e),
                Err(IntakeError::BlobUnavailable(info)) => {
                    // Accepted messages are not lost: the file is taken in
                    // once the store is back. Say so once.
                    if attempt == 1 {
                        let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
                        let _ = outbox.send(sid, &frame, Audience::User).await;
                    }
                    metrics::turn("blob_error");
                    return Ok(Settle::Retry(STORE_RETRY));
                }
            };
            last_seq += 1;
            let record = MessageRecord {
                session_id: sid.to_owned(),
                seq: last_seq,
                message_id: envelope.message_id.clone(),
                client_id: envelope.client_id.clone(),
                sender: envelope.sender,
                kind: said.kind,
                content: said.content,
                file_id: said.file.as_ref().map(|f| f.id.clone()),
                model_id: None,
                timestamp: envelope.received_at,
                metadata: said.metadata,
                tokens: None,
            };
            session.counters.message_count += 1;
            let name = session.name.is_empty().then(|| match &said.file {
                Some(file) if record.content.is_empty() => session_name::from_first_message(&file.name),
                _ => session_name::from_first_message(&record.content),
            });
            let patch = SessionPatch {
                last_activity: Some(Timestamp::now()),
                name,
                counters: Some(session.counters),
                ..SessionPatch::default()
            };
            store
                .record_message(&record, &patch)
                .instrument(info_span!("store_write", op = "record_message", sender = "user"))
                .await?;
            (record, said.file)
        }
    };
    let mut echo = history::frame(&user_message);
    if let Some(file) = &file {
        echo.file_url = links::download_url(state, file).await;
    }
    // Answered already (a redelivery after the answer was stored): send it
    // again for a client that may have missed it, and nothing more.
    if let Some(stored) = stored_answer {
        let _ = outbox.send(sid, &echo, Audience::All).await;
        let mut answered = [history::frame(&stored)];
        links::sign(state, &mut answered).await;
        let _ = outbox.send(sid, &answered[0], Audience::All).await;
        metrics::turn("ok");
        return Ok(Settle::Ack);
    }
    let _ = outbox.send(sid, &echo, Audience::All).await;
    if let Some(admin_id) = &session.assisting_admin_id {
        // Taken over: the admin answers, not the model (property 54).
        debug!(admin_id, "session taken over; the message goes to the admin");
        metrics::turn("assisted");
        return Ok(Settle::Ack);
    }
    if user_message.kind == MessageType::VoiceMessage && user_message.content.is_empty() {
        // Nothing to answer: the recording is kept, the user is told.
        let transcription = user_message
            .metadata
            .as_ref()
            .and_then(|m| m.get(meta::TRANSCRIPTION));
        let info = match transcription.map(String::as_str) {
            Some("unavailable") => ErrorInfo::new(
                ErrorCode::Unsupported,
                "voice messages cannot be transcribed here; the recording is kept — please type your message",
            ),
            _ => ErrorInfo::new(
                ErrorCode::LlmUnavailable,
                "the voice message could not be transcribed; the recording is kept — try again or type your message",
            ),
        };
        let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
        let _ = outbox.send(sid, &frame, Audience::All).await;
        metrics::turn("llm_error");
        return Ok(Settle::Ack);
    }
    let _ = outbox
        .send(sid, &outbound::loading(sid, &answer, true), Audience::All)
        .await;

    let mut messages = history::context(&earlier, state.config.chatbox.llm.context_tokens);
    let (content, attachments) = match (&file, user_message.kind) {
        (Some(file), MessageType::FileUpload) => {
            prompt::with_file(state, model.provider.as_ref(), &user_message.content, file).await
        }
        _ => (user_message.content.clone(), Vec::new()),
    };
    messages.push(ChatMessage {
        role: ChatRole::User,
        content,
        attachments,
    });
    let request = LlmRequest {
        messages,
        user: Some(pseudonym(&envelope.user_id)),
        conversation_id: history::provider_conversation(&earlier, model.id()),
    };
    let prompt_estimate: u64 = request.messages.iter().map(|m| estimate_tokens(&m.content)).sum();
    let started = Instant::now();
    let stop = state.stops.register(sid, envelope.received_at);
    let streamed = answer::stream(state, model, &request, sid, &answer, started, &stop)
        .instrument(info_span!("llm_call", provider = %model.id()))
        .await;
    drop(stop);
    let elapsed = started.elapsed();
    let provider_id = streamed.provider.clone().unwrap_or_else(|| model.id().to_owned());
    let answered_by = state.providers.select(Some(&provider_id)).unwrap_or(model);
    let model_name = answered_by.provider.config().model.clone();
    metrics::turn_timing(
        &provider_id,
        &model_name,
        elapsed.as_secs_f64(),
        streamed.first_token.map(|d| d.as_secs_f64()),
    );
    let (finish, failure) = match streamed.end {
        End::Failed(e) => {
            warn!(provider = %provider_id, "the model failed before answering: {e}");
            let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), llm_error_info(&e));
            let _ = outbox.send(sid, &frame, Audience::All).await;
            metrics::turn("llm_error");
            return finish_turn(state, sid, &answer).await;
        }
        End::Stopped(reason) if streamed.text.is_empty() => {
            info!(provider = %provider_id, ?reason, "stopped before the first token");
            metrics::turn("stopped");
            return finish_turn(state, sid, &answer).await;
        }
        End::Stopped(reason) => (reason.as_str(), None),
        End::Interrupted(e) => ("interrupted", Some(e)),
        End::Complete => ("complete", None),
    };

    // Keep what was streamed (all of it, or the part before a stop or a
    // break), marked with how it ended.
    let (prompt_tokens, completion_tokens) = streamed
        .usage
        .unwrap_or_else(|| (prompt_estimate, estimate_tokens(&streamed.text)));
    let stats = AnswerStats {
        prompt_tokens,
        completion_tokens,
        first_token_ms: streamed.first_token.map(millis).unwrap_or_default(),
        response_time_ms: millis(elapsed),
    };
    let seq = last_seq + 1;
    let audio = match streamed.audio {
        Some((data, format)) => generated::keep_audio(state, sid, &envelope.user_id, data, &format).await,
        None => None,
    };
    let audio_url = match &audio {
        Some(file) => links::download_url(state, file).await,
        None => None,
    };
    let linked = generated::linked(&streamed.files, &streamed.text);
    let mut done = outbound::ai_final(sid, &answer, Some(seq), streamed.text, &provider_id, &stats);
    done.file_id = audio.as_ref().map(|f| f.id.clone());
    done.file_url = audio_url.or_else(|| linked.first().map(|l| l.url.clone()));
    let meta = done.metadata.get_or_insert_with(Default::default);
    meta.insert("finish_reason".into(), finish.into());
    if let Some(files) = generated::files_metadata(&linked) {
        meta.insert(uploads::meta::FILES.into(), files);
    }
    if let Some(from) = &streamed.fell_back_from {
        meta.insert("fallback_from".into(), from.clone());
    }
    let mut kept = done.metadata.clone().unwrap_or_default();
    if let Some(conversation) = &streamed.conversation {
        kept.insert(history::CONVERSATION_KEY.into(), conversation.clone());
    }
    let tokens = stats.prompt_tokens + stats.completion_tokens;
    session
        .counters
        .add_answer(tokens, stats.response_time_ms, stats.first_token_ms);
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
                file_id: done.file_id.clone(),
                model_id: Some(provider_id.clone()),
                timestamp: done.timestamp.unwrap_or_else(Timestamp::now),
                metadata: Some(kept),
                tokens: Some(tokens),
            },
            &patch,
        )
        .instrument(info_span!("store_write", op = "record_message", sender = "ai"))
        .await?;
    let _ = outbox.send(sid, &done, Audience::All).await;
    metrics::tokens(
        &provider_id,
        &model_name,
        stats.prompt_tokens,
        stats.completion_tokens,
    );
    match failure {
        Some(e) => {
            warn!(provider = %provider_id, kept_chars = done.content.as_ref().map_or(0, String::len), "the answer broke off: {e}");
            let info = ErrorInfo::new(
                ErrorCode::LlmUnavailable,
                "the answer broke off; the part you see is kept — ask again to get the rest",
            );
            let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
            let _ = outbox.send(sid, &frame, Audience::All).await;
            metrics::turn("interrupted");
        }
        None => {
            metrics::turn(if finish == "complete" { "ok" } else { "stopped" });
            info!(
                provider = %provider_id,
                finish,
                response_ms = stats.response_time_ms,
                first_token_ms = stats.first_token_ms,
                completion_tokens = stats.completion_tokens,
                "answered"
            );
        }
    }
    finish_turn(state, sid, &answer).await
}

/// The user's message as it is stored: its type, its text (a caption, a
/// transcript), its file and the file's details.
struct Said {
    kind: MessageType,
    content: String,
    file: Option<FileRecord>,
    metadata: Option<chatbox_shared::protocol::Metadata>,
}

/// Takes in the file of a file or voice message (and transcribes a voice
/// message); text passes as it is.
async fn said(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    input: Input<'_>,
) -> Result<Said, IntakeError> {
    let (file_id, kind, caption) = match input {
        Input::Text { content, .. } => {
            return Ok(Said {
                kind: MessageType::UserMessage,
                content: content.to_owned(),
                file: None,
                metadata: None,
            });
        }
        Input::File { file_id, caption } => (file_id, FileKind::Upload, caption),
        Input::Voice { file_id } => (file_id, FileKind::Voice, ""),
    };
    let file = intake::accept(state, envelope, file_id, kind).await?;
    let mut metadata = chatbox_shared::protocol::Metadata::new();
    metadata.insert(meta::FILE_NAME.into(), file.name.clone());
    let media_type = file
        .media_type
        .clone()
        .unwrap_or_else(|| file.declared_type.clone());
    metadata.insert(meta::CONTENT_TYPE.into(), media_type);
    metadata.insert(
        meta::FILE_SIZE.into(),
        file.size.unwrap_or(file.declared_size).to_string(),
    );
    let (kind, content) = if kind == FileKind::Voice {
        let transcript = voice::transcribe(state, &file).await?;
        metadata.insert(meta::TRANSCRIPTION.into(), transcript.label().into());
        let text = match transcript {
            Transcript::Text(text) => text,
            Transcript::Failed | Transcript::Unavailable => String::new(),
        };
        (MessageType::VoiceMessage, text)
    } else {
        (MessageType::FileUpload, caption.to_owned())
    };
    Ok(Said {
        kind,
        content,
        file: Some(file),
        metadata: Some(metadata),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Switches the loading indicator off; the turn is done.
async fn finish_turn(state: &WorkerState, sid: &str, answer: &str) -> Result<Settle, StoreError> {
    let _ = state
        .outbox
        .send(sid, &outbound::loading(sid, answer, false), Audience::All)
        .await;
    Ok(Settle::Ack)
}

/// What the user hears when no model could answer.
fn llm_error_info(e: &LlmError) -> ErrorInfo {
    let message = match e {
        LlmError::Timeout(_) => "the assistant did not answer in time; please try again".to_owned(),
        e if e.retry_after().is_some() => {
            "the assistant is busy right now; please try again in a moment".to_owned()
        }
        _ => "the assistant could not answer right now; please try again".to_owned(),
    };
    let info = ErrorInfo::new(ErrorCode::LlmUnavailable, message);
    match e.retry_after() {
        Some(after) => info.retry_after(after.max(Duration::from_secs(1))),
        None => info,
    }
}

fn unknown_model(state: &WorkerState, id: &str) -> String {
    let known: Vec<&str> = state.providers.all().iter().map(|m| m.id()).collect();
    format!("unknown model {id:?}; choose one of: {}", known.join(", "))
}

/// A stable stand-in for a user id, for the provider's abuse checks: the
/// provider can tell users apart without learning who they are.
fn pseudonym(user_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("chatbox-user:{user_id}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// `model_select`: validated against the configured models, kept on the
/// session for every later turn, confirmed to the user.
async fn select_model(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    model_id: &str,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let reply = match state.providers.select(Some(model_id)) {
        None => {
            metrics::turn("rejected");
            outbound::error_reply(
                envelope.client_id.as_deref(),
                Some(sid),
                ErrorInfo::new(ErrorCode::InvalidField, unknown_model(state, model_id)),
            )
        }
        Some(model) => {
            let patch = SessionPatch {
                model_id: Some(model.id().to_owned()),
                last_activity: Some(Timestamp::now()),
                ..SessionPatch::default()
            };
            state.store.update_session(sid, &patch).await?;
            info!(model_id = model.id(), "model selected");
            metrics::turn("ok");
            outbound::model_selected(
                envelope.client_id.as_deref(),
                sid,
                model.id(),
                model.provider.name(),
            )
        }
    };
    let _ = state.outbox.send(sid, &reply, Audience::All).await;
    Ok(Settle::Ack)
}
