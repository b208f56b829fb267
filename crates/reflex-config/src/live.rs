//! `[live]`: the Foxglove WebSocket server that shows samples, predictions, events and stats
//! while the daemon runs.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[live]`; without it, no server.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// The IP address and TCP port the server listens on, such as `"127.0.0.1:8765"` (this
    /// machine only) or `"0.0.0.0:8765"` (every interface). Port 0 takes any free port, which
    /// the daemon logs.
    #[serde(deserialize_with = "crate::address::socket_addr")]
    pub listen: SocketAddr,
}

impl crate::Setting for LiveConfig {
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}
