//! System tests: the real `chatbox` binary, started as separate processes
//! against the real Redis and NATS (JetStream) on loopback, driven over
//! real WebSockets.
//!
//! Each test runs in its own namespace (a random prefix for Redis keys,
//! NATS subjects and the stream), so tests run in parallel and never see
//! each other; the namespace is deleted when the test ends. Redis and NATS
//! addresses come from `CHATBOX_TEST_REDIS_URL` and `CHATBOX_TEST_NATS_URL`
//! (default: the standard local ports); `scripts/test.sh` starts them when
//! they are missing. The notification tests deliver to real servers too
//! ([`sinks`]: aiosmtpd, and recorders that speak Twilio's and SES's
//! APIs).

// A test harness: a failed unwrap is a failed test, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

mod sinks;
mod support;
mod uploads;

mod admin;
mod all_in_one;
mod answers;
mod auth;
mod cli;
mod context;
mod dify;
mod llm;
mod notifications;
mod pages;
mod persistence;
mod resilience;
mod scaled;
mod security;
mod session_limits;
mod shutdown;
mod traces;
mod waiting;
mod worker_crash;
