//! The WebSocket origin check (`WS_ALLOWED_ORIGINS`): a browser may open a
//! socket only from a listed origin, or from the server's own (its chat
//! page and admin console, served from the host the socket is opened on).
//! Clients that send no `Origin` (native apps, servers) are not browsers
//! and pass; an empty list allows every origin, which start-up warns about.

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

    /// Whether a request with this `Origin` header, to this `Host`, may
    /// open a socket. A browser does not let a page forge its `Origin`, so
    /// an origin naming the very host the request went to is one of this
    /// server's own pages.
    pub(crate) fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        match origin {
            _ if self.any => true,
            None => true,
            Some(origin) => {
                let origin = normalize(origin);
                let own = host.is_some_and(|host| {
                    origin
                        .split_once("://")
                        .is_some_and(|(_, authority)| authority == normalize(host))
                });
                own || self.allowed.contains(&origin)
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
        assert!(p.allows(Some("https://CHAT.example.com"), None));
        assert!(!p.allows(Some("https://evil.example.com"), None));
        assert!(p.allows(None, None));
        assert!(!p.allows_any());
        assert!(OriginPolicy::new(&[]).allows(Some("https://anything"), None));
        assert!(OriginPolicy::new(&["*".into()]).allows_any());
    }

    #[test]
    fn the_servers_own_pages_pass_whatever_the_list() {
        let p = OriginPolicy::new(&["https://app.example.com".into()]);
        let host = Some("chat.example.com");
        assert!(p.allows(Some("https://chat.example.com"), host));
        assert!(p.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")));
        // Another site's page, whatever host it aims at, does not.
        assert!(!p.allows(Some("https://evil.example.com"), host));
        assert!(!p.allows(Some("https://chat.example.com.evil.net"), host));
        assert!(!p.allows(Some("https://chat.example.com"), Some("other.example.com")));
    }
}
