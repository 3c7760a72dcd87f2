//! NATS subject matching, for the in-process bus: tokens separated by `.`,
//! `*` matches one token, `>` matches one or more trailing tokens.

/// Whether `subject` matches the subscription `pattern`.
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// Whether a pattern has wildcards (and so cannot be looked up exactly).
pub(crate) fn has_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|t| t == "*" || t == ">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_nats() {
        assert!(subject_matches("chat.in.>", "chat.in.abc"));
        assert!(subject_matches("chat.in.>", "chat.in.a.b"));
        assert!(!subject_matches("chat.in.>", "chat.in"));
        assert!(subject_matches("chat.*.abc", "chat.out.abc"));
        assert!(!subject_matches("chat.*", "chat.out.abc"));
        assert!(subject_matches("chat.out.abc", "chat.out.abc"));
        assert!(!subject_matches("chat.out.abc", "chat.out.abcd"));
        assert!(!subject_matches("chat.out.abc.d", "chat.out.abc"));
        assert!(has_wildcard("a.*.c") && has_wildcard("a.>") && !has_wildcard("a.b"));
    }
}
