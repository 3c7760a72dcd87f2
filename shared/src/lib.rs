//! What every chatbox component agrees on.
//!
//! The gateway, the worker and the binary share this crate: the client wire
//! protocol ([`protocol`]), the envelopes that cross the backplane
//! ([`envelope`]), the names of NATS subjects and Redis keys ([`namespace`]),
//! configuration ([`config`]), JWT authentication ([`auth`]), ids
//! ([`ids`]), telemetry ([`telemetry`]), and the two backplane *ports*
//! with their adapters: [`bus`] (NATS, or in-process) and [`coordinator`]
//! (Redis, or in-process). [`periodic`] paces the background passes of
//! both roles; [`keyfile`] keeps a generated key on disk.
//!
//! How the pieces fit: the binary loads a [`config::Config`], derives a
//! [`namespace::Namespace`] from it, and opens one adapter per port
//! ([`bus::NatsBus`] or [`bus::MemoryBus`], [`coordinator::RedisCoordinator`]
//! or [`coordinator::MemoryCoordinator`], each wrapped in its `Metered…`
//! timing decorator). Gateways and workers then see only `Arc<dyn Bus>` and
//! `Arc<dyn Coordinator>`: a gateway turns a client's [`protocol`] frame into
//! an [`envelope::InboundEnvelope`] on the inbound queue of its session's
//! subject, a worker answers with [`protocol::Message`] frames on the
//! session's `chat.out` subject, and the coordinator decides which
//! connection owns the session. For instance, a gateway pod listens on its
//! control subject, where another pod's kill switch reaches it:
//!
//! ```
//! use bytes::Bytes;
//! use chatbox_shared::bus::{Bus, Headers, MemoryBus, MemoryBusOptions};
//! use chatbox_shared::envelope::{Control, KillReason};
//! use chatbox_shared::namespace::Namespace;
//! use futures_util::StreamExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let subjects = Namespace::new("demo")?.subjects();
//! let bus = MemoryBus::new(MemoryBusOptions::default());
//! let mut orders = bus.subscribe(subjects.control("gateway-1")).await?;
//!
//! let kill = Control::Kill {
//!     conn_id: 7,
//!     session_id: "s-1".into(),
//!     reason: KillReason::ConnectedElsewhere,
//! };
//! let payload = Bytes::from(serde_json::to_vec(&kill)?);
//! bus.publish(subjects.control("gateway-1"), Headers::new(), payload).await?;
//!
//! let order = orders.next().await.ok_or("subscription ended")?;
//! assert_eq!(serde_json::from_slice::<Control>(&order.payload)?, kill);
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod bus;
pub mod config;
pub mod coordinator;
pub mod envelope;
pub mod frame_batch;
pub mod ids;
pub mod keyfile;
pub mod namespace;
pub mod periodic;
pub mod protocol;
pub mod telemetry;
