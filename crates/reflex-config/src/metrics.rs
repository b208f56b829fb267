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
    pub listen: String,
}

impl crate::Setting for MetricsConfig {
    fn validate(&self) -> Vec<String> {
        match self.address() {
            Ok(_) => Vec::new(),
            Err(_) => {
                vec![format!("listen = \"{}\" is not an IP address and port such as \"127.0.0.1:9187\"", self.listen)]
            }
        }
    }
}

impl MetricsConfig {
    /// `listen` as an address (always `Ok` in a loaded config: [`crate::load`] checked it).
    pub fn address(&self) -> Result<SocketAddr, std::net::AddrParseError> {
        self.listen.parse()
    }
}
