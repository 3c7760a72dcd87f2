//! Streaming one answer to a session: start it ([`dispatch`]), forward its
//! text as `ai_response` chunks — text that follows within the chunk
//! window joins the same frame — and notice when it ends, breaks off,
//! falls silent for longer than the provider's idle timeout, or is
//! stopped. What happened is the [`End`] of the [`Answer`]; the turn
//! decides what to keep. A provider that rewrites the answer (Dify's
//! moderation) sends the whole new text in one frame that replaces the
//! old; an agent at work shows as a `working` status. Spoken audio and the provider's files are kept in
//! the answer, not streamed: they are not text that reached the user.

use std::collections::VecDeque;
use std::time::Duration;

use chatbox_shared::envelope::{Audience, StopReason};
use chatbox_shared::protocol::{Message, outbound};
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::stops::Registration;
use crate::llm::{Cut, LlmError, LlmEvent, LlmRequest, Model, dispatch};
use crate::state::WorkerState;

/// The most frames one message carries.
const MAX_BATCH: usize = 64;

/// How an answer ended.
#[derive(Debug)]
pub(super) enum End {
    /// The model finished (or the provider cut it: [`Answer::cut`]).
    Complete,
    /// The user stopped it (or left).
    Stopped(StopReason),
    /// It broke off after some text had reached the user.
    Interrupted(LlmError),
    /// It failed before any text reached the user (after retries and
    /// fallbacks).
    Failed(LlmError),
}

/// What came out of the model.
#[derive(Debug)]
pub(super) struct Answer {
    /// The text sent to the user.
    pub text: String,
    /// From the start of the turn to the first text.
    pub first_token: Option<Duration>,
    /// The provider's token counts, if it gave them.
    pub usage: Option<(u64, u64)>,
    /// The provider's conversation id (Dify), to continue next turn.
    pub conversation: Option<String>,
    /// The spoken answer: every audio piece in order, and their format.
    /// It is not text that reached the user; it is delivered at the end.
    pub audio: Option<(Vec<u8>, String)>,
    /// Files the provider produced: their URL and media type, if known.
    pub files: Vec<(String, Option<String>)>,
    /// The provider that answered (a fallback, maybe).
    pub provider: Option<String>,
    /// The model chosen, when a fallback answered instead.
    pub fell_back_from: Option<String>,
    /// Why the provider cut the answer short, when it said so.
    pub cut: Option<Cut>,
    /// How it ended.
    pub end: End,
}

impl Answer {
    fn new(end: End) -> Self {
        Answer {
            text: String::new(),
            first_token: None,
            usage: None,
            conversation: None,
            audio: None,
            files: Vec::new(),
            provider: None,
            fell_back_from: None,
            cut: None,
            end,
        }
    }

    /// Keeps what an event that sends nothing says.
    fn record(&mut self, event: LlmEvent) {
        match event {
            LlmEvent::Usage {
                prompt_tokens,
                completion_tokens,
            } => self.usage = Some((prompt_tokens, completion_tokens)),
            LlmEvent::Conversation(id) => self.conversation = Some(id),
            LlmEvent::Delta(text) => self.text.push_str(&text),
            LlmEvent::Replace(text) => self.text = text,
            LlmEvent::Audio { data, format } => match &mut self.audio {
                Some((audio, _)) => audio.extend_from_slice(&data),
                None => self.audio = Some((data.to_vec(), format)),
            },
            LlmEvent::File { url, media_type } => self.files.push((url, media_type)),
            LlmEvent::Finish(cut) => self.cut = Some(cut),
            LlmEvent::Working(_) | LlmEvent::KeepAlive => {}
        }
    }
}

/// Streams the answer of `model` to `request` into session `sid` under
/// `answer_id`, until it ends or `stop` fires.
pub(super) async fn stream(
    state: &WorkerState,
    model: &Model,
    request: &LlmRequest,
    sid: &str,
    answer_id: &str,
    started: Instant,
    stop: &Registration,
) -> Answer {
    let stopped = || End::Stopped(stop.reason().unwrap_or(StopReason::User));
    let start = dispatch(&state.providers, model, request, &state.config.chatbox.llm.retry);
    let begun = tokio::select! {
        begun = start => begun,
        () = stop.token.cancelled() => return Answer::new(stopped()),
    };
    let begun = match begun {
        Ok(begun) => begun,
        Err(e) => return Answer::new(End::Failed(e)),
    };
    let mut answer = Answer::new(End::Complete);
    answer.provider = Some(begun.provider.id().to_owned());
    answer.fell_back_from = begun.fell_back_from;
    let mut out = Frames::new(state, sid, answer_id);
    let idle = begun.provider.idle_timeout();
    let mut head: VecDeque<LlmEvent> = begun.head.into();
    let mut stream = begun.stream;
    let end = loop {
        let ready = match head.pop_front() {
            Some(event) => Some(Some(Ok(event))),
            // What the model has sent already joins the frames gathered.
            None if out.gathered.len() < MAX_BATCH => stream.next().now_or_never(),
            None => None,
        };
        let event = match ready {
            Some(event) => Ok(event),
            None => {
                // Nothing more is ready: what was gathered goes out now.
                out.publish().await;
                let deadline = out.flush_at.unwrap_or_else(|| Instant::now() + idle);
                tokio::select! {
                    biased;
                    () = stop.token.cancelled() => break stopped(),
                    event = tokio::time::timeout_at(deadline, stream.next()) => event,
                }
            }
        };
        match event {
            // The chunk window closed: send what it gathered.
            Err(_) if out.flush_at.is_some() => out.flush(),
            Err(_) => {
                let e = LlmError::Timeout("between tokens");
                begun.breaker.record_failure(&e);
                break End::Interrupted(e);
            }
            Ok(None) => break End::Complete,
            Ok(Some(Err(e))) => {
                if e.counts_against_provider() {
                    begun.breaker.record_failure(&e);
                }
                break End::Interrupted(e);
            }
            Ok(Some(Ok(event))) => out.forward(&mut answer, event, started),
        }
    };
    out.flush();
    out.publish().await;
    answer.end = match end {
        // Nothing reached the user: as if it never started.
        End::Interrupted(e) if answer.text.is_empty() => End::Failed(e),
        end => end,
    };
    answer
}

/// The frames of one answer on their way to the session: text that
/// follows within the chunk window joins the same `ai_response` frame, and
/// frames made from events that were ready at the same moment go out as
/// one message ([`chatbox_shared::frame_batch`]).
struct Frames<'a> {
    state: &'a WorkerState,
    sid: &'a str,
    answer_id: &'a str,
    window: Duration,
    pending: String,
    flush_at: Option<Instant>,
    gathered: Vec<Message>,
}

impl<'a> Frames<'a> {
    fn new(state: &'a WorkerState, sid: &'a str, answer_id: &'a str) -> Self {
        Frames {
            state,
            sid,
            answer_id,
            window: state.config.chatbox.worker.chunk_window,
            pending: String::new(),
            flush_at: None,
            gathered: Vec::new(),
        }
    }

    /// Gathers what the event shows the user, and keeps it in the answer.
    fn forward(&mut self, answer: &mut Answer, event: LlmEvent, started: Instant) {
        match event {
            LlmEvent::Delta(text) => {
                answer.first_token.get_or_insert_with(|| started.elapsed());
                answer.text.push_str(&text);
                self.pending.push_str(&text);
                if self.window.is_zero() {
                    self.flush();
                } else if self.flush_at.is_none() {
                    self.flush_at = Some(Instant::now() + self.window);
                }
            }
            LlmEvent::Replace(text) => {
                // What was gathered is part of what is replaced.
                self.pending.clear();
                self.flush_at = None;
                let frame = outbound::ai_replace(self.sid, self.answer_id, text.clone());
                self.gathered.push(frame);
                answer.text = text;
            }
            LlmEvent::Working(tool) => {
                self.flush();
                let frame = outbound::working(self.sid, self.answer_id, tool.as_deref());
                self.gathered.push(frame);
            }
            other => answer.record(other),
        }
    }

    /// Makes a chunk of the text gathered so far, if any.
    fn flush(&mut self) {
        self.flush_at = None;
        if !self.pending.is_empty() {
            let chunk = outbound::ai_chunk(self.sid, self.answer_id, std::mem::take(&mut self.pending));
            self.gathered.push(chunk);
        }
    }

    /// Sends the frames gathered, as one message.
    async fn publish(&mut self) {
        if !self.gathered.is_empty() {
            self.state
                .outbox
                .send_all(self.sid, &self.gathered, Audience::All)
                .await;
            // Cleared, not taken: the next batch reuses the room.
            self.gathered.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_pieces_are_joined_and_files_kept_without_counting_as_text() {
        let mut answer = Answer::new(End::Complete);
        for event in [
            LlmEvent::Audio {
                data: bytes::Bytes::from_static(b"RI"),
                format: "wav".into(),
            },
            LlmEvent::File {
                url: "https://files.example/chart.png".into(),
                media_type: Some("image/png".into()),
            },
            LlmEvent::Audio {
                data: bytes::Bytes::from_static(b"FF"),
                format: "wav".into(),
            },
        ] {
            answer.record(event);
        }
        assert_eq!(answer.audio, Some((b"RIFF".to_vec(), "wav".to_owned())));
        assert_eq!(
            answer.files,
            vec![(
                "https://files.example/chart.png".to_owned(),
                Some("image/png".to_owned())
            )]
        );
        assert!(answer.text.is_empty() && answer.first_token.is_none());
    }
}
