//! The client protocol: JSON text frames, one message per frame.
//!
//! The envelope and field names are the seed's (`type`, `session_id`,
//! `content`, `file_id`, `file_url`, `model_id`, `timestamp`, `sender`,
//! `metadata`, `error`). Additions are optional fields only (`id`, `seq`,
//! `message_id`, `done`), so a client written to the seed's protocol keeps
//! working. [`inbound`] turns a client frame into a validated
//! [`ClientCommand`]; [`outbound`] builds the frames the server sends.

pub mod admin;
mod error_code;
mod finish_reason;
pub mod inbound;
mod message;
mod message_type;
pub mod outbound;
pub mod sessions;
mod timestamp;
pub mod uploads;

#[cfg(test)]
mod properties;

pub use error_code::{ErrorCode, ErrorInfo};
pub use finish_reason::FinishReason;
pub use inbound::{
    ClientCommand, ClientFrame, InboundLimits, PageRequest, ProtocolError, parse_client_frame,
};
pub use message::{Message, Metadata, Sender};
pub use message_type::MessageType;
pub use timestamp::Timestamp;
