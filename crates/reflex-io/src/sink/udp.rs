//! `kind = "udp"`: one datagram per record.

use crate::error::SinkError;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

pub struct Udp {
    socket: UdpSocket,
    target: SocketAddr,
}

impl Udp {
    /// A socket sending to `target` (`host:port`).
    pub fn open(target: &str) -> Result<Udp, SinkError> {
        let addr = target
            .to_socket_addrs()
            .map_err(|source| SinkError::Resolve { target: target.into(), source })?
            .next()
            .ok_or_else(|| SinkError::NoAddress { target: target.into() })?;
        let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local).map_err(SinkError::Socket)?;
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
    fn never_block(&mut self) -> bool {
        // A full socket buffer (the receiver far behind) then fails the datagram, counted,
        // instead of stalling inference.
        self.socket.set_nonblocking(true).is_ok()
    }
}
