//! The HTTP listener of every role: accepts TCP connections and serves
//! them with hyper (HTTP/1.1, WebSocket upgrades), bounding what a client
//! that has not sent a whole request yet can hold — it has no token to
//! count against `MAX_CONNECTIONS` until then:
//!
//! * its headers must arrive within `app.header_read_timeout` (slowloris),
//! * and fit in `app.max_header_bytes` (larger: 431 and closed),
//! * and at most `app.max_handshakes` connections may wait for their first
//!   request at once; beyond that a new connection is closed at accept.
//!
//! Each bound counts in `chatbox_http_connections_closed_early_total`
//! (by reason); `chatbox_http_handshakes` is how many wait now.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{counter, gauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

/// The bounds on connections that have not sent a request yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a request's headers may take to arrive.
    pub header_read_timeout: Duration,
    /// The largest request head (start line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Connections that may wait for their first request at once.
    pub max_handshakes: usize,
}

impl Limits {
    /// The limits of `[app]`.
    pub(crate) fn from_config(app: &chatbox_shared::config::AppConfig) -> Self {
        Limits {
            header_read_timeout: app.header_read_timeout,
            max_header_bytes: app.max_header_bytes,
            max_handshakes: app.max_handshakes,
        }
    }
}

/// A connection still waiting for its first request: holds a place among
/// `max_handshakes` until its first request's headers are in.
struct Handshake {
    _permit: OwnedSemaphorePermit,
}

impl Handshake {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        gauge!("chatbox_http_handshakes").increment(1.0);
        Handshake { _permit: permit }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        gauge!("chatbox_http_handshakes").decrement(1.0);
    }
}

fn closed_early(reason: &'static str) {
    counter!("chatbox_http_connections_closed_early_total", "reason" => reason).increment(1);
}

/// Serves `app` on `listener` until `stop`, then lets open requests
/// finish (upgraded sockets are the gateway's to drain).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    let connections = TaskTracker::new();
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    loop {
        let (tcp, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            closed_early("handshake_limit");
            debug!(%remote, "closed at accept: too many connections waiting for their first request");
            continue;
        };
        let handshake = Handshake::new(permit);
        // Small frames (streamed chunks) must not wait for Nagle. Failing
        // only costs latency, never correctness.
        let _ = tcp.set_nodelay(true);
        let Ok(service) = make.call(remote).await;
        connections.spawn(serve_connection(tcp, service, handshake, limits, stop.clone()));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn serve_connection<S>(
    tcp: TcpStream,
    service: S,
    handshake: Handshake,
    limits: Limits,
    stop: CancellationToken,
) where
    S: Service<Request, Response = axum::response::Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let waiting = Mutex::new(Some(handshake));
    let hyper_service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // A whole request head is in: the connection is no longer one of
        // those waiting for theirs.
        waiting.lock().unwrap_or_else(|p| p.into_inner()).take();
        service.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    let connection = builder
        .serve_connection(TokioIo::new(tcp), hyper_service)
        .with_upgrades();
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        if e.is_timeout() {
            closed_early("header_timeout");
        } else if e.is_parse_too_large() {
            closed_early("header_too_large");
        } else {
            debug!("connection ended with an error: {e}");
        }
    }
}
