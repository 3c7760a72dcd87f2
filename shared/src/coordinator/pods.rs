//! Pod heartbeats (`chat:pod:<pod>` and the `chat:{pods}` hash): each
//! gateway says every `heartbeat_interval` that it lives and how many
//! sockets it holds. Workers sum them for the concurrency samples and the
//! admin console; operators read them to see which gateways exist.

use serde::{Deserialize, Serialize};

use crate::protocol::Timestamp;

/// A pod's last heartbeat, as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodBeat {
    /// The pod.
    pub pod_id: String,
    /// What it said about itself: a [`GatewayBeat`] as JSON, for gateways.
    pub info: String,
}

impl PodBeat {
    /// The user sockets a gateway pod holds; `None` for another role or a
    /// heartbeat that cannot be read.
    fn gateway_connections(&self) -> Option<u64> {
        serde_json::from_str::<GatewayBeat>(&self.info)
            .ok()
            .filter(|beat| beat.role == GATEWAY_ROLE)
            .map(|beat| beat.connections)
    }
}

/// The role a gateway's heartbeat names.
const GATEWAY_ROLE: &str = "gateway";

/// What a gateway says about itself in its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayBeat {
    /// Always `gateway`.
    pub role: String,
    /// User sockets open on the pod.
    pub connections: u64,
    /// Sessions whose `chat.out` the pod listens on.
    pub sessions_listening: u64,
    /// When the pod started.
    pub started_at: Timestamp,
    /// The pod's version.
    pub version: String,
}

impl GatewayBeat {
    /// A gateway's heartbeat.
    pub fn new(connections: u64, sessions_listening: u64, started_at: Timestamp, version: &str) -> Self {
        GatewayBeat {
            role: GATEWAY_ROLE.to_owned(),
            connections,
            sessions_listening,
            started_at,
            version: version.to_owned(),
        }
    }
}

/// User sockets open on every live gateway, from their heartbeats.
pub fn connected_sessions(pods: &[PodBeat]) -> u64 {
    pods.iter().filter_map(PodBeat::gateway_connections).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_connections_of_gateways_only() {
        let gateway = |pod: &str, n| PodBeat {
            pod_id: pod.into(),
            info: serde_json::to_string(&GatewayBeat::new(n, 1, Timestamp::from_millis(1), "0.1.0")).unwrap(),
        };
        let pods = [
            gateway("a", 3),
            gateway("b", 4),
            PodBeat {
                pod_id: "w".into(),
                info: r#"{"role":"worker","connections":100}"#.into(),
            },
            PodBeat {
                pod_id: "x".into(),
                info: "not json".into(),
            },
        ];
        assert_eq!(connected_sessions(&pods), 7);
    }
}
