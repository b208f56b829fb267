//! `kind = "udp"`: one datagram per record.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

pub struct Udp {
    socket: UdpSocket,
    target: SocketAddr,
}

impl Udp {
    pub fn open(target: &str) -> Result<Udp, String> {
        let addr = target
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {target}: {e}"))?
            .next()
            .ok_or_else(|| format!("{target} resolves to no address"))?;
        let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        Ok(Udp { socket, target: addr })
    }
}

impl super::Output for Udp {
    fn lines(&self) -> bool {
        false
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        // A receiver that is not listening shows up as ECONNREFUSED on a later send: counted
        // like any other failure, and the next record is tried all the same.
        self.socket.send_to(bytes, self.target).map(|_| ())
    }
}
