//! `[chatbox.web]`: the pages a gateway serves, the chat page and the
//! admin console, whether from the binary or from a folder, and who may
//! frame the chat page.
//!
//! Checked for the gateway and the all-in-one.

use serde::{Deserialize, Serialize};

use super::problems::Problems;

/// `[chatbox.web]`: the pages gateways serve — the chat page at `/chat/`
/// and the admin console at `/chat/admin/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the pages; off leaves the API and sockets only.
    pub enabled: bool,
    /// Serve the pages from this folder (laid out like the repository's
    /// `web/`), read on every request, instead of the copy built into the
    /// binary: for working on the pages, or your own branding.
    pub dir: String,
    /// Sites that may show the chat page in a frame (CSP
    /// `frame-ancestors`); empty: the origins of
    /// `chatbox.websocket.allowed_origins`, or any site when that is empty
    /// too. The admin console is never framed.
    pub frame_ancestors: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: String::new(),
            frame_ancestors: Vec::new(),
        }
    }
}

impl WebConfig {
    /// Framers are origins, and a pages folder has the chat page.
    pub(super) fn check(&self, p: &mut Problems) {
        for origin in &self.frame_ancestors {
            p.check(
                origin == "*"
                    || origin == "'self'"
                    || origin.starts_with("http://")
                    || origin.starts_with("https://"),
                "chatbox.web.frame_ancestors",
                || format!("{origin:?} is not an origin like https://app.example.com, 'self' or *"),
            );
        }
        if !self.dir.is_empty() {
            p.check(
                std::path::Path::new(&self.dir).join("chat/index.html").is_file(),
                "chatbox.web.dir",
                || {
                    format!(
                        "{:?} has no chat/index.html (it is laid out like the repository's web/ folder)",
                        self.dir
                    )
                },
            );
        }
    }
}
