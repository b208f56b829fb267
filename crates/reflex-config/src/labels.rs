//! `[labels]`: where the running daemon takes activity marks for its recording (`reflexd label
//! NAME`, or any program sending one datagram per mark).
//!
//! Not to be confused with `[output] labels`, the class names of a `classify` model: this
//! section marks what the wearer is doing, for a labelled dataset.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[labels]`; without it the daemon takes no marks and `reflexd label` has nowhere to send.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelsConfig {
    /// The UDP address (`IP:PORT`) the daemon binds to receive marks and `reflexd label`
    /// sends to. An IP, not a host name: the daemon binds it as written. `0.0.0.0` takes marks
    /// from other hosts too (`reflexd label` then sends to 127.0.0.1).
    #[serde(deserialize_with = "crate::address::socket_addr")]
    pub listen: SocketAddr,
}

impl crate::Setting for LabelsConfig {
    fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        // Port 0 would bind somewhere new at every start: `reflexd label` could not find it.
        if self.listen.port() == 0 {
            p.push(format!("listen = \"{}\": the port must not be 0 (reflexd label sends to it)", self.listen));
        }
        p
    }
}
