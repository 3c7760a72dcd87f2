//! The `Bus` port, timed: every call of any adapter is recorded in
//! `chatbox_bus_operation_seconds{adapter, op, outcome}` (see
//! [`crate::telemetry::PortTimings`]). Subscribing is timed until the
//! subscription stands, not for the messages that follow.

use std::time::Duration;

use bytes::Bytes;

use super::{Bus, BusError, BusMessage, Enqueued, Headers, InboundQueue, Subscription};

crate::metered_port! {
    /// A bus whose calls are timed.
    MeteredBus: Bus, "chatbox_bus_operation_seconds";
    async fn publish(&self, subject: String, headers: Headers, payload: Bytes) -> Result<(), BusError>;
    async fn subscribe(&self, subject: String) -> Result<Subscription, BusError>;
    async fn queue_subscribe(&self, subject: String, group: String) -> Result<Subscription, BusError>;
    async fn request(&self, subject: String, headers: Headers, payload: Bytes, timeout: Duration) -> Result<BusMessage, BusError>;
    async fn flush(&self) -> Result<(), BusError>;
    async fn enqueue(&self, subject: String, dedupe_id: String, headers: Headers, payload: Bytes) -> Result<Enqueued, BusError>;
    async fn inbound(&self) -> Result<InboundQueue, BusError>;
    async fn check(&self) -> Result<(), BusError>;
}
