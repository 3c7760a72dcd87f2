//! `[chatbox.websocket]`: the limits of one client socket (buffers, message
//! and frame sizes, the send queue) and its heartbeat.
//!
//! `WS_ALLOWED_ORIGINS` (the seed's name) sets `allowed_origins`. Checked
//! for the roles that hold sockets: the gateway and the all-in-one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::problems::Problems;

/// `[chatbox.websocket]`: socket limits and heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Read buffer per socket, in bytes; grows only for larger frames.
    pub read_buffer_size: usize,
    /// Bytes buffered before a write is flushed to the socket.
    pub write_buffer_size: usize,
    /// Largest message a client may send, in bytes.
    pub max_message_size: usize,
    /// Largest frame a client may send, in bytes.
    pub max_frame_size: usize,
    /// Largest `content` of a client message, in bytes.
    pub max_content_bytes: usize,
    /// How often the server sends WebSocket pings.
    #[serde(with = "duration")]
    pub ping_period: Duration,
    /// A socket silent this long is closed.
    #[serde(with = "duration")]
    pub pong_wait: Duration,
    /// A write that takes longer fails and closes the socket.
    #[serde(with = "duration")]
    pub write_wait: Duration,
    /// Frames queued for a socket before it is dropped as too slow.
    pub send_queue_limit: usize,
    /// Browser origins allowed to open sockets (`WS_ALLOWED_ORIGINS`);
    /// empty allows every origin.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            read_buffer_size: 1024,
            write_buffer_size: 4096,
            max_message_size: 64 * 1024,
            max_frame_size: 64 * 1024,
            max_content_bytes: 16 * 1024,
            ping_period: Duration::from_secs(30),
            pong_wait: Duration::from_secs(90),
            write_wait: Duration::from_secs(10),
            send_queue_limit: 1024,
            allowed_origins: Vec::new(),
        }
    }
}

impl WebSocketConfig {
    /// Sizes hold a message, the heartbeat outlasts its period, origins are origins.
    pub(super) fn check(&self, p: &mut Problems) {
        p.check(
            self.read_buffer_size >= 256,
            "chatbox.websocket.read_buffer_size",
            || "must be at least 256 bytes".into(),
        );
        p.check(
            self.max_message_size >= 1024,
            "chatbox.websocket.max_message_size",
            || "must be at least 1024 bytes".into(),
        );
        p.check(
            self.max_frame_size >= 1024 && self.max_frame_size <= self.max_message_size,
            "chatbox.websocket.max_frame_size",
            || "must be at least 1024 bytes and at most max_message_size".into(),
        );
        p.check(
            self.max_content_bytes > 0 && self.max_content_bytes < self.max_message_size,
            "chatbox.websocket.max_content_bytes",
            || "must be above zero and below max_message_size".into(),
        );
        p.check(
            self.send_queue_limit > 0,
            "chatbox.websocket.send_queue_limit",
            || "must be at least 1".into(),
        );
        p.positive(self.ping_period, "chatbox.websocket.ping_period");
        p.check(
            self.pong_wait > self.ping_period,
            "chatbox.websocket.pong_wait",
            || "must be longer than ping_period".into(),
        );
        p.positive(self.write_wait, "chatbox.websocket.write_wait");
        for origin in &self.allowed_origins {
            p.check(
                origin == "*" || origin.starts_with("http://") || origin.starts_with("https://"),
                "chatbox.websocket.allowed_origins",
                || format!("{origin:?} is not an origin like https://chat.example.com"),
            );
        }
    }
}
