//! `reflexd label NAME`: one activity mark to the running daemon, at its config's
//! `[labels] listen`, and its answer: the sample the mark applies from.

use reflex_config::{Error, Place};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// How long the daemon has to answer: it answers at once unless the host is overloaded.
const ANSWER: Duration = Duration::from_secs(2);

pub fn run(config: &Path, name: &str) -> anyhow::Result<()> {
    let c = reflex_config::load(config)?;
    let Some(labels) = c.labels else {
        anyhow::bail!(Error {
            file: config.into(),
            place: Place::Key { section: "labels".into(), key: "listen".into() },
            what: "not set: the daemon takes no marks (add [labels] listen = \"127.0.0.1:PORT\")".into(),
        });
    };
    // Refused here rather than by the daemon: the user sees why at once.
    reflex_io::labels::parse(name.as_bytes()).map_err(|why| anyhow::anyhow!("label {name:?}: {why}"))?;
    let at = format!("{}: [labels] listen = \"{}\"", config.display(), labels.listen);
    let answer = exchange(target(labels.listen), name.as_bytes()).map_err(|why| anyhow::anyhow!("{at}: {why}"))?;
    let answer: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| anyhow::anyhow!("{at}: the answer is not a daemon's: {}", String::from_utf8_lossy(&answer)))?;
    if let Some(why) = answer["error"].as_str() {
        anyhow::bail!("{at}: the daemon refused the label: {why}");
    }
    let sample = answer["sample"].as_u64().unwrap_or(0);
    match answer["label"].as_str() {
        Some(label) => println!("{label}: from sample {sample}"),
        None => println!("unlabelled from sample {sample}"),
    }
    if answer["recording"] == false {
        tracing::warn!("the daemon is not recording (run --record LOG.mcap): the mark is only in its log");
    }
    Ok(())
}

/// The daemon's address; one bound to every interface is reached on the loopback.
fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// Sends `datagram` to `to`; the answer, or why there is none.
fn exchange(to: SocketAddr, datagram: &[u8]) -> Result<Vec<u8>, String> {
    let any: IpAddr = if to.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let socket = UdpSocket::bind((any, 0)).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    // Connected: a port nobody listens on comes back as "connection refused" instead of silence.
    socket.connect(to).map_err(|e| format!("cannot reach it: {e}"))?;
    socket.set_read_timeout(Some(ANSWER)).map_err(|e| format!("cannot wait for an answer: {e}"))?;
    socket.send(datagram).map_err(|e| format!("cannot send: {e}"))?;
    let mut buf = [0u8; 1024];
    match socket.recv(&mut buf) {
        Ok(n) => Ok(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            Err("no daemon listens there (is `reflexd run` running with this config?)".into())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(format!("no answer within {} s: the mark may be lost", ANSWER.as_secs()))
        }
        Err(e) => Err(format!("no answer: {e}")),
    }
}
