//! Where a client's token comes from: the `Authorization: Bearer` header,
//! the WebSocket subprotocol list (`chatbox.v1, bearer.<token>`, for
//! browsers, which cannot set headers on a WebSocket), or `?token=`.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};

/// The subprotocol the server speaks and answers with.
pub(crate) const PROTOCOL: &str = "chatbox.v1";
const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// What the upgrade request carries.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The token, if any.
    pub token: Option<String>,
    /// Whether the client offered the `chatbox.v1` subprotocol.
    pub offers_protocol: bool,
}

impl Credentials {
    /// Reads the token from the header, the subprotocols or the query, in
    /// that order of preference.
    pub(crate) fn from_request(headers: &HeaderMap, query_token: Option<&str>) -> Self {
        let mut offers_protocol = false;
        let mut protocol_token = None;
        for value in headers.get_all(SEC_WEBSOCKET_PROTOCOL) {
            let Ok(value) = value.to_str() else { continue };
            for protocol in value.split(',').map(str::trim) {
                if protocol == PROTOCOL {
                    offers_protocol = true;
                } else if let Some(token) = protocol.strip_prefix(BEARER_PROTOCOL_PREFIX) {
                    protocol_token.get_or_insert_with(|| token.to_owned());
                }
            }
        }
        let header_token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(|t| t.trim().to_owned());
        let token = header_token
            .or(protocol_token)
            .or_else(|| query_token.map(str::to_owned))
            .filter(|t| !t.is_empty());
        Credentials {
            token,
            offers_protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn header_beats_subprotocol_beats_query() {
        let mut h = HeaderMap::new();
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chatbox.v1, bearer.from-protocol"),
        );
        let c = Credentials::from_request(&h, Some("from-query"));
        assert_eq!(c.token.as_deref(), Some("from-protocol"));
        assert!(c.offers_protocol);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer from-header"));
        assert_eq!(
            Credentials::from_request(&h, None).token.as_deref(),
            Some("from-header")
        );
        let c = Credentials::from_request(&HeaderMap::new(), Some("from-query"));
        assert_eq!(c.token.as_deref(), Some("from-query"));
        assert!(!c.offers_protocol);
        assert_eq!(Credentials::from_request(&HeaderMap::new(), Some("")).token, None);
    }
}
