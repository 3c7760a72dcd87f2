//! What the user sent, as it is stored: text passes as it is; the file of
//! a `file_upload` or `voice_message` is taken in first
//! ([`uploads::intake`]: checked, moved out of quarantine) and a voice
//! message is transcribed ([`uploads::voice`]), its transcript becoming the
//! message's text.

use chatbox_shared::envelope::InboundEnvelope;
use chatbox_shared::protocol::{MessageType, Metadata};

use crate::state::WorkerState;
use crate::store::{FileKind, FileRecord};
use crate::uploads::intake::{self, IntakeError};
use crate::uploads::meta;
use crate::uploads::voice::{self, Transcript};

/// What the user sent: text, a file, or a voice message.
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
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

impl<'a> Input<'a> {
    /// The model the message itself asks for.
    pub(super) fn model_id(self) -> Option<&'a str> {
        match self {
            Input::Text { model_id, .. } => model_id,
            Input::File { .. } | Input::Voice { .. } => None,
        }
    }
}

/// The user's message as it is stored: its type, its text (a caption, a
/// transcript), its file and the file's details.
pub(super) struct Said {
    pub(super) kind: MessageType,
    pub(super) content: String,
    pub(super) file: Option<FileRecord>,
    pub(super) metadata: Option<Metadata>,
}

/// Takes in the file of a file or voice message (and transcribes a voice
/// message); text passes as it is.
pub(super) async fn take_in(
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
    let mut metadata = Metadata::new();
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
