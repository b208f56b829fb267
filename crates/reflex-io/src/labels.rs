//! `[labels] listen`: activity marks for a recording, sent by `reflexd label NAME` (or any
//! program) as one UDP datagram each.
//!
//! A datagram is the activity's name as UTF-8 text (surrounding white space is trimmed), at
//! most [`MAX_LABEL`] bytes, no control characters; `-` or nothing ends the labelled span.
//! The mark applies from the first sample decoded after it arrived: its `sample` is the number
//! of samples decoded so far. It goes to the recording's `/reflex/labels` channel and to the
//! log, and the sender gets one datagram back: `{"sample": 400, "label": "walk", "recording":
//! true}`, or `{"error": "…"}` for a datagram that is not a label (counted, and logged the
//! first time).
//!
//! The listener is a thread of its own: it reads one atomic counter of the reader's and hands
//! the mark to the recorder's queue, so the hot path never sees it.

use crate::error::Error;
use crate::recording::{unix_ns, LabelMark};
use crate::source::Counters;
use crate::stop::Stop;
use crate::tap::Tap;
use reflex_config::LabelsConfig;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest label, in bytes of UTF-8.
pub const MAX_LABEL: usize = 64;
/// The label that ends a labelled span (as does an empty datagram).
pub const END: &str = "-";
/// How often the listener looks at its stop request between datagrams.
const POLL: Duration = Duration::from_millis(100);

/// Why a datagram is not a label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadLabel {
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// Longer than [`MAX_LABEL`] bytes.
    #[error("longer than {MAX_LABEL} bytes ({0} bytes)")]
    TooLong(usize),
    /// A control character (a line break, a tab, NUL, …): labels end up in csv cells and log
    /// lines.
    #[error("holds a control character ({0:?})")]
    Control(char),
}

/// The activity a datagram names: `Some(name)`, or `None` for [`END`] or an empty datagram.
pub fn parse(datagram: &[u8]) -> Result<Option<&str>, BadLabel> {
    let text = std::str::from_utf8(datagram).map_err(|_| BadLabel::NotUtf8)?.trim();
    if text.len() > MAX_LABEL {
        return Err(BadLabel::TooLong(text.len()));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(BadLabel::Control(c));
    }
    Ok(Some(text).filter(|t| !t.is_empty() && *t != END))
}

/// `[labels] listen`, bound: binding happens before the daemon starts, so a port in use is one
/// error line and no recording is created.
pub struct Bound {
    socket: UdpSocket,
    addr: SocketAddr,
}

/// Binds the section's address.
pub fn bind(config: &LabelsConfig) -> Result<Bound, Error> {
    let addr = config.listen;
    let socket = UdpSocket::bind(addr).map_err(|source| Error::Labels { addr, source })?;
    socket.set_read_timeout(Some(POLL)).map_err(|source| Error::Labels { addr, source })?;
    Ok(Bound { socket, addr })
}

/// The running listener.
pub struct Listener {
    stop: Stop,
    thread: JoinHandle<u64>,
}

impl Bound {
    /// Starts the listener thread: `counters.samples` numbers each mark, `tap` hands it to the
    /// recording (when `recording`) and the live view.
    pub fn start(self, counters: Arc<Counters>, tap: Tap, recording: bool) -> Result<Listener, Error> {
        tracing::info!(listen = %self.addr, "labels: taking activity marks (reflexd label NAME)");
        let stop = Stop::new();
        let serve = Serve { socket: self.socket, counters, tap, recording, refused: 0, warned_unrecorded: false };
        let seen = stop.clone();
        let thread = std::thread::Builder::new()
            .name("labels".into())
            .spawn(move || serve.run(&seen))
            .map_err(|source| Error::Thread { thread: "labels", source })?;
        Ok(Listener { stop, thread })
    }
}

impl Listener {
    /// Stops the thread (within [`POLL`]) and lets go of its recording handle; the datagrams
    /// refused.
    pub fn stop(self) -> u64 {
        self.stop.set();
        self.thread.join().unwrap_or(0)
    }
}

struct Serve {
    socket: UdpSocket,
    counters: Arc<Counters>,
    tap: Tap,
    recording: bool,
    refused: u64,
    warned_unrecorded: bool,
}

impl Serve {
    fn run(mut self, stop: &Stop) -> u64 {
        // Room for the largest datagram, so that a refusal gives its true length.
        let mut buf = vec![0u8; 65536];
        while !stop.is_set() {
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let reply = self.mark(&buf[..n], from);
                    // The sender may be gone already: the mark is kept all the same.
                    let _ = self.socket.send_to(reply.to_string().as_bytes(), from);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                // ICMP errors of earlier replies surface here on some systems: not ours to mind.
                Err(e) => tracing::debug!("labels: {e}"),
            }
        }
        if self.refused > 0 {
            tracing::info!(refused = self.refused, "labels: datagrams that were not labels");
        }
        self.refused
    }

    /// Takes one datagram; the reply to its sender.
    fn mark(&mut self, datagram: &[u8], from: SocketAddr) -> serde_json::Value {
        let label = match parse(datagram) {
            Ok(label) => label,
            Err(why) => {
                self.refused += 1;
                if self.refused == 1 {
                    tracing::warn!(%from, "labels: a datagram that is not a label, ignored: {why} (further ones are counted)");
                } else {
                    tracing::debug!(%from, "labels: a datagram that is not a label, ignored: {why}");
                }
                return serde_json::json!({ "error": why.to_string() });
            }
        };
        let sample = self.counters.samples.load(Ordering::Relaxed);
        let ns = unix_ns();
        match label {
            Some(label) => tracing::info!(sample, label, "labels: mark"),
            None => tracing::info!(sample, "labels: mark, end of the labelled span"),
        }
        self.tap.label(ns, &LabelMark { sample, label: label.map(String::from), received: ns as f64 / 1e9 });
        if !self.recording && !self.warned_unrecorded {
            self.warned_unrecorded = true;
            tracing::warn!("labels: not recording (run --record LOG.mcap): marks are only logged");
        }
        serde_json::json!({ "sample": sample, "label": label, "recording": self.recording })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_a_trimmed_printable_name_or_the_end_of_a_span() {
        assert_eq!(parse(b"walk"), Ok(Some("walk")));
        assert_eq!(parse(b"  stairs up\n"), Ok(Some("stairs up")));
        assert_eq!(parse("marche_rapide_é".as_bytes()), Ok(Some("marche_rapide_é")));
        assert_eq!(parse(b"-"), Ok(None));
        assert_eq!(parse(b" - "), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"\n"), Ok(None));
        assert_eq!(parse(&[b'a'; MAX_LABEL]), Ok(Some("a".repeat(MAX_LABEL).as_str())));
        assert_eq!(parse(&[b'a'; MAX_LABEL + 1]), Err(BadLabel::TooLong(MAX_LABEL + 1)));
        assert_eq!(parse(b"walk\nrun"), Err(BadLabel::Control('\n')));
        assert_eq!(parse(b"a\0"), Err(BadLabel::Control('\0')));
        assert_eq!(parse(&[0xff, 0xfe]), Err(BadLabel::NotUtf8));
        assert!(BadLabel::TooLong(70).to_string().contains("longer than 64 bytes"));
    }

    fn reply(sock: &UdpSocket) -> serde_json::Value {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        serde_json::from_slice(&buf[..n]).unwrap()
    }

    /// Over real sockets: the mark takes the samples decoded so far, a bad datagram gets an
    /// error reply and is counted, and the listener stops when asked.
    #[test]
    fn marks_are_numbered_by_the_samples_decoded_and_answered() {
        let bound = bind(&LabelsConfig { listen: "127.0.0.1:0".parse().unwrap() }).unwrap();
        let addr = bound.socket.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        counters.samples.store(400, Ordering::Relaxed);
        let listener = bound.start(counters.clone(), Tap::default(), false).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        sock.connect(addr).unwrap();
        sock.send(b"walk").unwrap();
        assert_eq!(reply(&sock), serde_json::json!({"sample": 400, "label": "walk", "recording": false}));
        counters.samples.store(1000, Ordering::Relaxed);
        sock.send(b"-").unwrap();
        assert_eq!(reply(&sock), serde_json::json!({"sample": 1000, "label": null, "recording": false}));
        sock.send(&[b'x'; 300]).unwrap();
        assert_eq!(reply(&sock)["error"], "longer than 64 bytes (300 bytes)");
        assert_eq!(listener.stop(), 1);
    }

    #[test]
    fn an_address_in_use_is_an_error_naming_it() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let listen = taken.local_addr().unwrap();
        let Err(e) = bind(&LabelsConfig { listen }) else { panic!("bound twice") };
        assert!(e.to_string().starts_with(&format!("[labels] listen = \"{listen}\": cannot bind: ")), "{e}");
    }
}
