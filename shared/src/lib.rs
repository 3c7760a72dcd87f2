//! What every chatbox component agrees on.
//!
//! The gateway, the worker and the binary share this crate: the client wire
//! protocol ([`protocol`]), the envelopes that cross the backplane
//! ([`envelope`]), the names of NATS subjects and Redis keys ([`namespace`]),
//! configuration ([`config`]), JWT authentication ([`auth`]), telemetry
//! ([`telemetry`]), and the two backplane *ports* with their adapters:
//! [`bus`] (NATS, or in-process) and [`coordinator`] (Redis, or in-process).

pub mod auth;
pub mod bus;
pub mod config;
pub mod coordinator;
pub mod envelope;
pub mod ids;
pub mod keyfile;
pub mod namespace;
pub mod periodic;
pub mod protocol;
pub mod telemetry;
