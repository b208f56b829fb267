//! The `listen` keys of `[labels]`, `[live]` and `[metrics]`: an IP address and a port.

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;

/// An IP address and a port. A host name is refused: what the daemon binds must never depend
/// on name resolution. The message says what is expected, instead of the standard library's
/// "invalid socket address syntax".
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "\"{text}\" is not an IP address and port, such as \"127.0.0.1:9100\" or \"[::1]:9100\""
        ))
    })
}
