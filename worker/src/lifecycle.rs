//! Session lifecycle: which session a new socket belongs to.
//!
//! One active session per user (property 48). A socket without a session
//! id resumes the user's active session, or starts a new one; a socket
//! that names the active session resumes it (within the reconnect timeout
//! the gateway lets the active session linger for). A socket that names
//! any other session gets a new session, and the previously active one is
//! reported so its sockets are closed.

use chatbox_shared::coordinator::{Coordinator, CoordinatorError};
use chatbox_shared::envelope::{OpenSession, OpenedSession, RpcError};
use chatbox_shared::ids::{is_valid_session_id, is_valid_user_id, new_session_id};
use chatbox_shared::protocol::ErrorCode;

fn unavailable(e: CoordinatorError) -> RpcError {
    tracing::warn!("session lookup failed: {e}");
    RpcError {
        code: ErrorCode::ServiceUnavailable,
        message: "sessions cannot be opened right now; reconnect shortly".into(),
    }
}

/// Opens or restores the session for a new socket.
pub async fn open(coordinator: &dyn Coordinator, request: &OpenSession) -> Result<OpenedSession, RpcError> {
    if !is_valid_user_id(&request.user_id) {
        return Err(RpcError {
            code: ErrorCode::InvalidField,
            message: "invalid user id".into(),
        });
    }
    let active = coordinator
        .active_session(&request.user_id)
        .await
        .map_err(unavailable)?;
    match request.requested_session_id.as_deref() {
        Some(requested) if !is_valid_session_id(requested) => Err(RpcError {
            code: ErrorCode::InvalidField,
            message: "invalid session id".into(),
        }),
        Some(requested) if active.as_deref() == Some(requested) => {
            let resumed = coordinator
                .activate_session(&request.user_id, requested)
                .await
                .map_err(unavailable)?;
            Ok(OpenedSession {
                restored: resumed.session_id == requested,
                session_id: resumed.session_id,
                previous_session_id: None,
            })
        }
        Some(_) => {
            // Expired, unknown, or not this user's: a fresh session, and
            // nothing said about the one asked for.
            let session_id = new_session_id();
            let previous = coordinator
                .switch_active_session(&request.user_id, &session_id)
                .await
                .map_err(unavailable)?;
            Ok(OpenedSession {
                session_id,
                restored: false,
                previous_session_id: previous,
            })
        }
        None => {
            let active = coordinator
                .activate_session(&request.user_id, &new_session_id())
                .await
                .map_err(unavailable)?;
            Ok(OpenedSession {
                restored: !active.created,
                session_id: active.session_id,
                previous_session_id: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatbox_shared::coordinator::memory::MemoryCoordinator;
    use chatbox_shared::namespace::Namespace;

    fn request(user: &str, session: Option<&str>) -> OpenSession {
        OpenSession {
            user_id: user.into(),
            requested_session_id: session.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn resumes_the_active_session_and_starts_fresh_for_unknown_ones() {
        let c = MemoryCoordinator::new(Namespace::default().keys());
        let first = open(&c, &request("u", None)).await.unwrap();
        assert!(!first.restored);
        let again = open(&c, &request("u", None)).await.unwrap();
        assert!(again.restored);
        assert_eq!(again.session_id, first.session_id);
        let named = open(&c, &request("u", Some(&first.session_id))).await.unwrap();
        assert!(named.restored);
        let other = open(&c, &request("u", Some("someone-elses"))).await.unwrap();
        assert!(!other.restored);
        assert_ne!(other.session_id, first.session_id);
        assert_eq!(
            other.previous_session_id.as_deref(),
            Some(first.session_id.as_str())
        );
        let err = open(&c, &request("u", Some("bad.id"))).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidField);
    }
}
