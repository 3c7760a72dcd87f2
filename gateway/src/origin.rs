//! The WebSocket origin check (`WS_ALLOWED_ORIGINS`): a browser may open a
//! socket only from a listed origin. Clients that send no `Origin` (native
//! apps, servers) are not browsers and pass; an empty list allows every
//! origin, which start-up warns about.

/// Which browser origins may open sockets.
#[derive(Debug, Clone)]
pub(crate) struct OriginPolicy {
    allowed: Vec<String>,
    any: bool,
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl OriginPolicy {
    /// A policy from the configured list (`"*"` allows every origin).
    pub(crate) fn new(allowed: &[String]) -> Self {
        OriginPolicy {
            any: allowed.is_empty() || allowed.iter().any(|o| o.trim() == "*"),
            allowed: allowed.iter().map(|o| normalize(o)).collect(),
        }
    }

    /// Whether every origin is allowed.
    pub(crate) fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether a request with this `Origin` header may open a socket.
    pub(crate) fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.any => true,
            None => true,
            Some(origin) => {
                let origin = normalize(origin);
                self.allowed.contains(&origin)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origins_pass_and_others_do_not() {
        let p = OriginPolicy::new(&["https://chat.example.com/".into()]);
        assert!(p.allows(Some("https://CHAT.example.com")));
        assert!(!p.allows(Some("https://evil.example.com")));
        assert!(p.allows(None));
        assert!(!p.allows_any());
        assert!(OriginPolicy::new(&[]).allows(Some("https://anything")));
        assert!(OriginPolicy::new(&["*".into()]).allows_any());
    }
}
