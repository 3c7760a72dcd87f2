//! Identifiers that end up in NATS subjects and Redis keys, and the rules
//! that keep them safe there.
//!
//! A session id becomes part of `chat.in.<sid>`, so it must never carry a
//! `.`, `*`, `>` or white space; user ids become part of Redis keys with
//! hash tags, so they must not carry braces.

/// Whether `s` may be used as a session, message or file id:
/// 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`.
///
/// `.` and `:` are allowed for client message ids; session ids are further
/// restricted by [`is_valid_session_id`].
pub(crate) fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// Whether `s` may be used as a session id (it becomes a subject token):
/// 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn is_valid_session_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// Whether `s` may be used as a user id (a JWT `sub`): 1 to 256 printable
/// characters without white space, braces, or the invisible characters
/// that make one id look like another in the admin console (bidirectional
/// overrides such as U+202E, zero-width spaces and joiners).
pub fn is_valid_user_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !is_invisible(c) && c != '{' && c != '}')
}

/// Bidirectional controls and zero-width characters: they change how text
/// reads without showing themselves.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Whether `s` may be used as a pod id or namespace (a subject token and a
/// stream-name part): 1 to 63 ASCII letters, digits, `-` or `_`.
pub fn is_valid_pod_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// A new session id: a time-ordered UUID (v7), so ids sort by creation.
pub fn new_session_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new file id (time-ordered UUID).
pub fn new_file_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new server-side message id (time-ordered UUID).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The id of the answer to the inbound message `inbound_id` of `session_id`:
/// the same on every attempt, so a turn retried on another worker streams
/// under the same id and the client replaces the partial answer.
pub fn answer_id(session_id: &str, inbound_id: &str) -> String {
    let name = format!("{session_id}/{inbound_id}/answer");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// Turns any string into a valid pod id: invalid characters become `-`.
pub fn sanitize_pod_id(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if s.is_empty() {
        s = "pod".to_owned();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_subject_safe() {
        assert!(is_valid_session_id(&new_session_id()));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(!is_valid_session_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn user_ids_refuse_braces_and_blanks() {
        assert!(is_valid_user_id("alice@example.com"));
        assert!(!is_valid_user_id("a}b"));
        assert!(!is_valid_user_id("a b"));
        assert!(!is_valid_user_id(""));
    }

    #[test]
    fn user_ids_refuse_what_would_make_them_look_like_another() {
        for bad in [
            "admin\u{202E}nimda",
            "ann\u{200B}",
            "\u{FEFF}bob",
            "a\u{2066}b",
            "c\u{200D}d",
        ] {
            assert!(!is_valid_user_id(bad), "{bad:?}");
        }
        assert!(
            is_valid_user_id("Zoë-Ålund"),
            "letters of every script stay allowed"
        );
        assert!(is_valid_user_id("用户-42"));
    }

    #[test]
    fn answer_ids_are_stable_per_inbound_message() {
        assert_eq!(answer_id("s", "m1"), answer_id("s", "m1"));
        assert_ne!(answer_id("s", "m1"), answer_id("s", "m2"));
    }

    #[test]
    fn pod_ids_are_sanitized() {
        assert_eq!(sanitize_pod_id("gw.example.com"), "gw-example-com");
        assert!(is_valid_pod_id(&sanitize_pod_id("")));
    }
}
