//! Admins in the loop: watching and taking over sessions, from any
//! gateway, whichever gateway the session's user is on.
//!
//! An admin console opens one socket (`/chat/admin/ws`, admin role) and
//! multiplexes every session it looks at over it: `watch` subscribes the
//! socket to the session's `chat.out` fan-out — every message and every
//! streamed chunk, as they happen — and records the admin in the session's
//! presence, which every watching admin sees (`presence` frames);
//! `takeover` takes the session's takeover lock (one admin at a time) and
//! puts an `admin_join` on the session's queue, so it is ordered with the
//! user's messages: the answer streaming when it starts is stopped first.
//! While the lock is held the assistant is silent and the user's and the
//! admin's messages reach each other. `release` (or the admin's absence
//! beyond the grace period, noticed by the workers) ends the takeover.
//!
//! Rooms: [`registry`] (admin sockets of this pod), [`socket`] (one admin
//! socket), [`takeover`] (takeover, release, presence — shared by the socket
//! and the HTTP API), [`api`] (`/chat/admin/*` over HTTP), [`renewal`]
//! (keeping locks and presence alive while admins are connected).

pub(crate) mod api;
pub(crate) mod registry;
pub(crate) mod renewal;
pub(crate) mod socket;
pub(crate) mod takeover;

pub(crate) use registry::{AdminConn, AdminRegistry};
pub(crate) use takeover::Admin;
