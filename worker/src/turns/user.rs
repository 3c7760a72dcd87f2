//! A user's turn: a message (text, a file, a voice note) answered by the
//! model. It reads as its steps:
//!
//! 1. **accept** — the session, the model (the message's own, else the
//!    session's choice, else the default), the user's message given the
//!    session's next sequence number and echoed with it;
//! 2. **load context** — the session's earlier messages within the context
//!    budget (what the [`context_cache`](super::context_cache) holds, and
//!    from the store only what is new), and the file as the provider takes
//!    it ([`uploads::prompt`]);
//! 3. **call the model and stream** its answer as `ai_response` chunks
//!    under one `message_id` ([`answer`](super::answer)), with the loading
//!    indicator on;
//! 4. **store** the user's message, the answer with its tokens, timing and
//!    how it ended (`finish_reason`: a stopped or broken-off answer keeps
//!    the part the user saw) and the session's new totals, in one write;
//!    send the final frame (`done: true`, the whole text);
//! 5. **settle** — loading off; the delivery is acked.
//!
//! The user's message is not lost while it waits for its answer: the
//! inbound queue holds it until the turn is acked, after the store; a turn
//! run again (the worker died) finds the session's sequence where it was
//! and gives the message the same number. An answer that fails before its
//! first token stores the user's message alone and tells the user
//! (`LLM_UNAVAILABLE`, with `retry_after` when the provider named one). A
//! session taken over by an admin stores and echoes the message but calls
//! no model. Audio and files that come with the answer are kept or linked
//! ([`uploads::generated`]).

use std::time::Duration;

use chatbox_shared::envelope::{Audience, InboundEnvelope};
use chatbox_shared::ids::answer_id;
use chatbox_shared::protocol::outbound::{self, AnswerStats};
use chatbox_shared::protocol::{
    ErrorCode, ErrorInfo, FinishReason, Message, MessageType, Metadata, Sender, Timestamp,
};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use super::answer::{self, Answer, End};
use super::context_cache::Held;
use super::input::{self, Input};
use super::model_select::unknown_model;
use super::{STORE_RETRY, Settle, refuse};
use crate::llm::{ChatMessage, ChatRole, Cut, LlmError, LlmRequest, Model, estimate_tokens};
use crate::metrics::{self, TurnOutcome};
use crate::state::WorkerState;
use crate::store::{FileRecord, MessageRecord, SessionPatch, SessionRecord, StoreError, TurnQuery, TurnView};
use crate::uploads::intake::IntakeError;
use crate::uploads::{self, generated, links, meta, prompt};
use crate::{history, session_name};

/// Earlier messages a turn reads for context, at most.
const CONTEXT_MESSAGES: usize = 50;

/// The newest messages of a session a turn reads and the cache holds: the
/// context, and the user's message and its answer when a previous attempt
/// stored them.
const NEWEST_MESSAGES: usize = CONTEXT_MESSAGES + 2;

/// Where a step leaves the turn: on to the next step, or done.
enum Step<T> {
    Next(T),
    Done(Settle),
}

/// A user's message, accepted: numbered and ready to be answered; stored
/// with its answer (or alone, when no answer is kept).
struct Accepted<'s> {
    session: SessionRecord,
    model: &'s Model,
    message: MessageRecord,
    /// What storing the message changes in its session (its totals),
    /// while the message waits to be stored; `None` once stored.
    unstored: Option<SessionPatch>,
    file: Option<FileRecord>,
    /// The answer, when a redelivered turn finds it stored already.
    answered: Option<MessageRecord>,
    /// The session's last sequence number, the user's message included.
    last_seq: u64,
    /// The session's newest messages, as the context cache holds them.
    held: Held,
}

/// Runs a user's turn.
pub(super) async fn turn(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    input: Input<'_>,
    attempt: u64,
) -> Result<Settle, StoreError> {
    let sid = envelope.session_id.as_str();
    let answer_id = answer_id(sid, &envelope.message_id);
    let mut accepted = match accept(state, envelope, input, &answer_id, attempt).await? {
        Step::Next(accepted) => accepted,
        Step::Done(settle) => return Ok(no_answer_coming(state, sid, &answer_id, settle).await),
    };
    if let Some(settle) = no_model_call(state, envelope, &mut accepted).await? {
        return Ok(no_answer_coming(state, sid, &answer_id, settle).await);
    }
    // The echo and the answer's loading indicator: one message on the bus.
    let announce = [
        echo(state, &accepted).await,
        outbound::loading(sid, &answer_id, true),
    ];
    state.outbox.send_all(sid, &announce, Audience::All).await;
    let request = load_context(state, envelope, &accepted).await;
    let started = Instant::now();
    let stop = state.stops.register(sid, envelope.received_at);
    let streamed = answer::stream(state, accepted.model, &request, sid, &answer_id, started, &stop)
        .instrument(info_span!("llm_call", provider = %accepted.model.id()))
        .await;
    drop(stop);
    let asked = Asked {
        envelope,
        answer_id: &answer_id,
        request: &request,
        started,
    };
    let mut closing = store_answer(state, accepted, asked, streamed).await?;
    // Step 5: the loading indicator off, with the final frame; done.
    closing.push(outbound::loading(sid, &answer_id, false));
    state.outbox.send_all(sid, &closing, Audience::All).await;
    Ok(Settle::Ack)
}

/// A turn that ends without streaming an answer switches off the loading
/// indicator its gateway showed when it queued the message (`queued`):
/// the user hears the answer is not coming. A turn tried again later
/// leaves it on.
async fn no_answer_coming(state: &WorkerState, sid: &str, answer_id: &str, settle: Settle) -> Settle {
    if matches!(settle, Settle::Ack) {
        let off = outbound::loading(sid, answer_id, false);
        state.outbox.send(sid, &off, Audience::All).await;
    }
    settle
}

/// Step 1: finds the session and the model, and numbers the user's
/// message (or finds it stored by a previous attempt).
async fn accept<'s>(
    state: &'s WorkerState,
    envelope: &InboundEnvelope,
    input: Input<'_>,
    answer_id: &str,
    attempt: u64,
) -> Result<Step<Accepted<'s>>, StoreError> {
    let sid = envelope.session_id.as_str();
    let store = state.store.as_ref();
    let refused = |code: ErrorCode, message: String| async move {
        Step::Done(refuse(state, envelope, Audience::User, ErrorInfo::new(code, message)).await)
    };
    let query = TurnQuery {
        session_id: sid,
        message_id: &envelope.message_id,
        answer_id,
        context: NEWEST_MESSAGES,
        known_upto: 0,
    };
    let Some((view, held)) = state.context_cache.turn_view(store, query).await? else {
        let message = "this conversation does not exist; reconnect".into();
        return Ok(refused(ErrorCode::SessionNotFound, message).await);
    };
    let TurnView {
        mut session,
        user_message,
        answer: answered,
        mut last_seq,
        ..
    } = view;
    let model = match input.model_id() {
        Some(id) => match state.providers.select(Some(id)) {
            Some(model) => model,
            None => return Ok(refused(ErrorCode::InvalidField, unknown_model(state, id)).await),
        },
        None => match state.providers.for_session(session.model_id.as_deref()) {
            Some(model) => model,
            None => return Ok(refused(ErrorCode::LlmUnavailable, "no model is configured".into()).await),
        },
    };
    let (message, file, unstored) = match user_message {
        Some(stored) => {
            let file = match &stored.file_id {
                Some(id) => store.file(id).await?,
                None => None,
            };
            (stored, file, None)
        }
        None => {
            if !session.is_active {
                let message = "this conversation has ended; reconnect to start a new one".into();
                return Ok(refused(ErrorCode::SessionEnded, message).await);
            }
            match take_message(state, envelope, input, &mut session, last_seq + 1, attempt).await? {
                Step::Next((message, file, patch)) => {
                    last_seq += 1;
                    (message, file, Some(patch))
                }
                Step::Done(settle) => return Ok(Step::Done(settle)),
            }
        }
    };
    Ok(Step::Next(Accepted {
        session,
        model,
        message,
        unstored,
        file,
        answered,
        last_seq,
        held,
    }))
}

/// Takes in what the user sent as message `seq` (naming the session after
/// it, if it is the first), and what storing it changes in the session:
/// its totals.
async fn take_message(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    input: Input<'_>,
    session: &mut SessionRecord,
    seq: u64,
    attempt: u64,
) -> Result<Step<(MessageRecord, Option<FileRecord>, SessionPatch)>, StoreError> {
    let sid = envelope.session_id.as_str();
    let said = match input::take_in(state, envelope, input).await {
        Ok(said) => said,
        Err(IntakeError::Refused(info)) => {
            return Ok(Step::Done(refuse(state, envelope, Audience::User, info).await));
        }
        Err(IntakeError::Store(e)) => return Err(e),
        Err(IntakeError::BlobUnavailable(info)) => {
            // Accepted messages are not lost: the file is taken in once
            // the store is back. Say so once.
            if attempt == 1 {
                let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), info);
                state.outbox.send(sid, &frame, Audience::User).await;
            }
            metrics::turn(TurnOutcome::BlobError);
            return Ok(Step::Done(Settle::Retry(STORE_RETRY)));
        }
    };
    let record = MessageRecord {
        session_id: sid.to_owned(),
        seq,
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
    if session.name.is_empty() {
        // The first message names the session now, as its answer starts:
        // a rename while that answer streams is not overwritten after.
        let name = match &said.file {
            Some(file) if record.content.is_empty() => session_name::from_first_message(&file.name),
            _ => session_name::from_first_message(&record.content),
        };
        let naming = SessionPatch {
            name: Some(name.clone()),
            ..SessionPatch::default()
        };
        state
            .store
            .update_session(sid, &naming)
            .instrument(info_span!("store_write", op = "update_session"))
            .await?;
        session.name = name;
    }
    let patch = SessionPatch {
        last_activity: Some(Timestamp::now()),
        counters: Some(session.counters),
        ..SessionPatch::default()
    };
    Ok(Step::Next((record, said.file, patch)))
}

/// Stores the user's message alone, if it is not stored yet (a turn that
/// keeps no answer).
async fn store_question(state: &WorkerState, accepted: &mut Accepted<'_>) -> Result<(), StoreError> {
    let Some(patch) = accepted.unstored.take() else {
        return Ok(());
    };
    state
        .store
        .record_message(&accepted.message, &patch)
        .instrument(info_span!("store_write", op = "record_message", sender = "user"))
        .await?;
    accepted.held.push([accepted.message.clone()], NEWEST_MESSAGES);
    let sid = accepted.message.session_id.as_str();
    state.context_cache.keep(sid, accepted.held.clone());
    Ok(())
}

/// The echo of the user's message, with its sequence number, for everyone
/// on the session.
async fn echo(state: &WorkerState, accepted: &Accepted<'_>) -> Message {
    let mut echo = history::frame(&accepted.message);
    if let Some(file) = &accepted.file {
        echo.file_url = links::download_url(state, file).await;
    }
    echo
}

/// The turns that call no model: answered already (a redelivery after the
/// answer was stored: it is sent again for a client that may have missed
/// it), taken over by an admin, or a voice note with nothing to answer.
/// Their message is stored, then echoed.
async fn no_model_call(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    accepted: &mut Accepted<'_>,
) -> Result<Option<Settle>, StoreError> {
    let sid = envelope.session_id.as_str();
    let message = &accepted.message;
    let nothing_to_answer = message.kind == MessageType::VoiceMessage && message.content.is_empty();
    if accepted.answered.is_none() && accepted.session.assisting_admin_id.is_none() && !nothing_to_answer {
        return Ok(None);
    }
    store_question(state, accepted).await?;
    let echo = echo(state, accepted).await;
    state.outbox.send(sid, &echo, Audience::All).await;
    Ok(Some(no_answer(state, envelope, accepted).await))
}

/// What a turn that calls no model does instead.
async fn no_answer(state: &WorkerState, envelope: &InboundEnvelope, accepted: &Accepted<'_>) -> Settle {
    let sid = envelope.session_id.as_str();
    if let Some(stored) = &accepted.answered {
        let mut answered = [history::frame(stored)];
        links::sign(state, &mut answered).await;
        state.outbox.send(sid, &answered[0], Audience::All).await;
        metrics::turn(TurnOutcome::Ok);
        return Settle::Ack;
    }
    if let Some(admin_id) = &accepted.session.assisting_admin_id {
        debug!(admin_id, "session taken over; the message goes to the admin");
        metrics::turn(TurnOutcome::Assisted);
        return Settle::Ack;
    }
    // Nothing to answer: the recording is kept, the user is told.
    let message = &accepted.message;
    let transcription = message.metadata.as_ref().and_then(|m| m.get(meta::TRANSCRIPTION));
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
    state.outbox.send(sid, &frame, Audience::All).await;
    metrics::turn(TurnOutcome::LlmError);
    Settle::Ack
}

/// Step 2: the request to the model — the earlier messages within the
/// context budget, then the user's message (with its file as the provider
/// takes it).
async fn load_context(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    accepted: &Accepted<'_>,
) -> LlmRequest {
    let message = &accepted.message;
    let earlier: Vec<_> = (accepted.held.newest_first.iter())
        .filter(|m| m.seq < message.seq)
        .take(CONTEXT_MESSAGES)
        .cloned()
        .collect();
    let mut messages = history::context(&earlier, state.config.chatbox.llm.context_tokens);
    let (content, attachments) = match (&accepted.file, message.kind) {
        (Some(file), MessageType::FileUpload) => {
            prompt::with_file(state, accepted.model.provider.as_ref(), &message.content, file).await
        }
        _ => (message.content.clone(), Vec::new()),
    };
    messages.push(ChatMessage {
        role: ChatRole::User,
        content,
        attachments,
    });
    LlmRequest {
        messages,
        user: Some(pseudonym(&envelope.user_id)),
        conversation_id: history::provider_conversation(&earlier, accepted.model.id()),
        claims: envelope.claims.clone(),
    }
}

/// What was asked of the model, for the step that stores its answer.
struct Asked<'a> {
    envelope: &'a InboundEnvelope,
    answer_id: &'a str,
    request: &'a LlmRequest,
    started: Instant,
}

/// Step 4: keeps what was streamed (all of it, or the part before a stop
/// or a break), marked with how it ended; returns the frames that tell the
/// user (the final frame, and an error if the answer broke off).
async fn store_answer(
    state: &WorkerState,
    mut accepted: Accepted<'_>,
    asked: Asked<'_>,
    streamed: Answer,
) -> Result<Vec<Message>, StoreError> {
    let model = accepted.model;
    let sid = asked.envelope.session_id.as_str();
    let elapsed = asked.started.elapsed();
    let provider_id = streamed.provider.clone().unwrap_or_else(|| model.id().to_owned());
    let answered_by = state.providers.select(Some(&provider_id)).unwrap_or(model);
    let model_name = answered_by.provider.config().model.clone();
    let first_token = streamed.first_token.map(|d| d.as_secs_f64());
    metrics::turn_timing(&provider_id, &model_name, elapsed.as_secs_f64(), first_token);
    let Some((finish, failure)) = ending(state, asked.envelope, &provider_id, &streamed).await else {
        store_question(state, &mut accepted).await?;
        return Ok(Vec::new());
    };
    let stats = stats_of(asked.request, &streamed, elapsed);
    let seq = accepted.last_seq + 1;
    let done = final_frame(state, &asked, seq, &provider_id, &stats, finish, streamed).await;
    let tokens = stats.prompt_tokens + stats.completion_tokens;
    (accepted.session.counters).add_answer(tokens, stats.response_time_ms, stats.first_token_ms);
    let record = MessageRecord {
        session_id: sid.to_owned(),
        seq,
        message_id: asked.answer_id.to_owned(),
        client_id: None,
        sender: Sender::Ai,
        kind: MessageType::AiResponse,
        content: done.frame.content.clone().unwrap_or_default(),
        file_id: done.frame.file_id.clone(),
        model_id: Some(provider_id.clone()),
        timestamp: done.frame.timestamp.unwrap_or_else(Timestamp::now),
        metadata: Some(done.kept),
        tokens: Some(tokens),
    };
    record_turn(state, accepted, &record).await?;
    // Counted before the user sees the answer: whoever reads the metrics
    // after the final frame finds the answer in them.
    metrics::tokens(
        &provider_id,
        &model_name,
        stats.prompt_tokens,
        stats.completion_tokens,
    );
    metrics::answer(&provider_id, finish);
    metrics::turn(outcome_of(finish, failure.is_some()));
    let broke_off = report(asked.envelope, &provider_id, &record, &stats, finish, failure);
    Ok([done.frame].into_iter().chain(broke_off).collect())
}

/// Stores the answer with the user's message (unless a previous step
/// stored it) and the session's new totals, in one write; the
/// context cache holds both after it.
async fn record_turn(
    state: &WorkerState,
    accepted: Accepted<'_>,
    answer: &MessageRecord,
) -> Result<(), StoreError> {
    let Accepted {
        session,
        message,
        unstored,
        mut held,
        ..
    } = accepted;
    let question = unstored.is_some().then_some(&message);
    let patch = SessionPatch {
        last_activity: Some(Timestamp::now()),
        counters: Some(session.counters),
        ..SessionPatch::default()
    };
    state
        .store
        .record_turn(question, answer, &patch)
        .instrument(info_span!("store_write", op = "record_turn", sender = "ai"))
        .await?;
    held.push(
        question.cloned().into_iter().chain([answer.clone()]),
        NEWEST_MESSAGES,
    );
    state.context_cache.keep(&answer.session_id, held);
    Ok(())
}

/// How a complete answer ended: as the provider said it cut it, if it did.
fn finish_of(cut: Option<Cut>) -> FinishReason {
    match cut {
        None => FinishReason::Complete,
        Some(Cut::Length) => FinishReason::Length,
        Some(Cut::ContentFilter) => FinishReason::ContentFilter,
    }
}

/// The answer's token counts (the provider's, else estimated) and timing.
fn stats_of(request: &LlmRequest, streamed: &Answer, elapsed: Duration) -> AnswerStats {
    let (prompt_tokens, completion_tokens) = streamed.usage.unwrap_or_else(|| {
        let prompt = request.messages.iter().map(|m| estimate_tokens(&m.content)).sum();
        (prompt, estimate_tokens(&streamed.text))
    });
    AnswerStats {
        prompt_tokens,
        completion_tokens,
        first_token_ms: streamed.first_token.map(millis).unwrap_or_default(),
        response_time_ms: millis(elapsed),
    }
}

/// Tells how the answer ended: the logs, always; the user, when it broke
/// off (the error frame returned).
fn report(
    envelope: &InboundEnvelope,
    provider_id: &str,
    stored: &MessageRecord,
    stats: &AnswerStats,
    finish: FinishReason,
    failure: Option<String>,
) -> Option<Message> {
    let Some(e) = failure else {
        info!(
            provider = %provider_id,
            finish = finish.as_str(),
            response_ms = stats.response_time_ms,
            first_token_ms = stats.first_token_ms,
            completion_tokens = stats.completion_tokens,
            "answered"
        );
        return None;
    };
    warn!(provider = %provider_id, kept_chars = stored.content.len(), "the answer broke off: {e}");
    let info = ErrorInfo::new(
        ErrorCode::LlmUnavailable,
        "the answer broke off; the part you see is kept — ask again to get the rest",
    );
    let sid = envelope.session_id.as_str();
    Some(outbound::error_reply(
        envelope.client_id.as_deref(),
        Some(sid),
        info,
    ))
}

/// The turn's outcome for the metrics, from how its answer ended.
fn outcome_of(finish: FinishReason, broke_off: bool) -> TurnOutcome {
    match finish {
        _ if broke_off => TurnOutcome::Interrupted,
        FinishReason::Complete => TurnOutcome::Ok,
        FinishReason::Length | FinishReason::ContentFilter => TurnOutcome::Cut,
        _ => TurnOutcome::Stopped,
    }
}

/// How the answer ended, if there is something to keep: its finish
/// reason, and the error it broke off with. An answer that failed, or was
/// stopped, before its first token keeps nothing (a failure is told to
/// the user).
async fn ending(
    state: &WorkerState,
    envelope: &InboundEnvelope,
    provider_id: &str,
    streamed: &Answer,
) -> Option<(FinishReason, Option<String>)> {
    let sid = envelope.session_id.as_str();
    match &streamed.end {
        End::Failed(e) => {
            warn!(provider = %provider_id, "the model failed before answering: {e}");
            let frame = outbound::error_reply(envelope.client_id.as_deref(), Some(sid), llm_error_info(e));
            state.outbox.send(sid, &frame, Audience::All).await;
            metrics::turn(TurnOutcome::LlmError);
            None
        }
        End::Stopped(reason) if streamed.text.is_empty() => {
            info!(provider = %provider_id, ?reason, "stopped before the first token");
            metrics::turn(TurnOutcome::Stopped);
            None
        }
        End::Stopped(reason) => Some((reason.finish_reason(), None)),
        End::Interrupted(e) => Some((FinishReason::Interrupted, Some(e.to_string()))),
        End::Complete => Some((finish_of(streamed.cut), None)),
    }
}

/// The final `ai_response` and the metadata stored with it.
struct FinalFrame {
    frame: Message,
    /// The frame's metadata plus what only the store keeps (the provider's
    /// conversation id).
    kept: Metadata,
}

/// Builds the final frame: the whole text, its statistics, how it ended,
/// the spoken answer kept as a file and the files the answer links.
async fn final_frame(
    state: &WorkerState,
    asked: &Asked<'_>,
    seq: u64,
    provider_id: &str,
    stats: &AnswerStats,
    finish: FinishReason,
    streamed: Answer,
) -> FinalFrame {
    let sid = asked.envelope.session_id.as_str();
    let audio = match streamed.audio {
        Some((data, format)) => {
            generated::keep_audio(state, sid, &asked.envelope.user_id, data, &format).await
        }
        None => None,
    };
    let audio_url = match &audio {
        Some(file) => links::download_url(state, file).await,
        None => None,
    };
    let linked = generated::linked(&streamed.files, &streamed.text);
    let mut frame = outbound::ai_final(sid, asked.answer_id, Some(seq), streamed.text, provider_id, stats);
    frame.file_id = audio.as_ref().map(|f| f.id.clone());
    frame.file_url = audio_url.or_else(|| linked.first().map(|l| l.url.clone()));
    let meta = frame.metadata.get_or_insert_with(Default::default);
    meta.insert("finish_reason".into(), finish.as_str().into());
    if let Some(files) = generated::files_metadata(&linked) {
        meta.insert(uploads::meta::FILES.into(), files);
    }
    if let Some(from) = &streamed.fell_back_from {
        meta.insert("fallback_from".into(), from.clone());
    }
    let mut kept = frame.metadata.clone().unwrap_or_default();
    if let Some(conversation) = &streamed.conversation {
        kept.insert(history::CONVERSATION_KEY.into(), conversation.clone());
    }
    FinalFrame { frame, kept }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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

/// A stable stand-in for a user id, for the provider's abuse checks: the
/// provider can tell users apart without learning who they are.
fn pseudonym(user_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("chatbox-user:{user_id}").as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}
