//! `[live]`: the Foxglove WebSocket server that shows samples, predictions, events and stats
//! while the daemon runs.

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;

/// `[live]`; without it, no server.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// The IP address and TCP port the server listens on, such as `"127.0.0.1:8765"` (this
    /// machine only) or `"0.0.0.0:8765"` (every interface). Port 0 takes any free port, which
    /// the daemon logs.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
}

/// An IP address and a port; a host name would need a lookup, and the message says what is
/// expected instead of the standard library's "invalid socket address syntax".
fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not an IP address and port, such as \"127.0.0.1:8765\" or \"[::1]:8765\""
        ))
    })
}

impl crate::Setting for LiveConfig {
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}
