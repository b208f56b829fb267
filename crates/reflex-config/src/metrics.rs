//! `[metrics]`: the Prometheus endpoint of a running daemon.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[metrics]`; without it nothing is served.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The IP address and TCP port that serve `GET /metrics`, e.g. `"127.0.0.1:9187"`. An IP
    /// address rather than a host name, so that what is bound never depends on name
    /// resolution; port 0 takes a free port (logged at start).
    #[serde(deserialize_with = "crate::address::socket_addr")]
    pub listen: SocketAddr,
}

impl crate::Setting for MetricsConfig {
    fn validate(&self) -> Vec<String> {
        Vec::new()
    }
}
