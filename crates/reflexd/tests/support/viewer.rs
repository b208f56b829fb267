//! A Foxglove WebSocket viewer written from the protocol, independent of the SDK the daemon
//! uses: `tungstenite` over a plain TCP socket, subprotocol `foxglove.sdk.v1` (the SDK's name
//! for the Foxglove WebSocket protocol v1). It reads `serverInfo` and `advertise`, subscribes,
//! and decodes binary `messageData` frames: opcode 1, u32 subscription id, u64 log time, payload.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub const SUBPROTOCOL: &str = "foxglove.sdk.v1";
/// Every topic the daemon publishes live.
pub const TOPICS: [&str; 4] = ["/imu/samples", "/reflex/predictions", "/reflex/events", "/reflex/stats"];

/// One advertised channel.
#[derive(Clone, Debug)]
pub struct Channel {
    pub id: u64,
    pub encoding: String,
    pub schema_name: String,
    pub schema: Value,
}

/// One `messageData` frame.
#[derive(Clone, Debug)]
pub struct Received {
    pub topic: String,
    pub log_time: u64,
    pub payload: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

pub struct Viewer {
    ws: WebSocket<TcpStream>,
    pub server_info: Value,
    /// By topic.
    pub channels: HashMap<String, Channel>,
    /// Subscription id → topic.
    subscriptions: HashMap<u32, String>,
}

/// The live view's address, from the daemon's log line `live view … url=ws://ADDR`.
pub fn address(log: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(at) = text.find("url=ws://") {
            let rest = &text[at + "url=ws://".len()..];
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no live view in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Viewer {
    /// Connects and reads until every topic is advertised.
    pub fn connect(addr: SocketAddr) -> Viewer {
        Self::over(TcpStream::connect(addr).unwrap(), addr)
    }

    /// Like [`Viewer::connect`], with a receive buffer of `bytes` set before connecting: a
    /// viewer that stops reading then stalls the server's writes within a few messages.
    pub fn connect_small(addr: SocketAddr, bytes: usize) -> Viewer {
        let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(bytes).unwrap();
        s.connect(&addr.into()).unwrap();
        Self::over(s.into(), addr)
    }

    fn over(stream: TcpStream, addr: SocketAddr) -> Viewer {
        // Short, so that `next` keeps to its limit; a timeout is a `WouldBlock` to retry.
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut request = format!("ws://{addr}").into_client_request().unwrap();
        request.headers_mut().insert("Sec-WebSocket-Protocol", SUBPROTOCOL.parse().unwrap());
        let (ws, response) = tungstenite::client(request, stream).unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], SUBPROTOCOL);
        let mut v = Viewer { ws, server_info: Value::Null, channels: HashMap::new(), subscriptions: HashMap::new() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while v.server_info.is_null() || TOPICS.iter().any(|t| !v.channels.contains_key(*t)) {
            assert!(Instant::now() < deadline, "not every topic advertised: {:?}", v.channels.keys());
            v.next_frame().unwrap();
        }
        v
    }

    /// The local address of the viewer's socket (as the server's log names the client).
    pub fn local_addr(&self) -> SocketAddr {
        self.ws.get_ref().local_addr().unwrap()
    }

    /// Subscribes to `topics` (their subscription ids: 0, 1, … in that order).
    pub fn subscribe(&mut self, topics: &[&str]) {
        let subs: Vec<Value> = topics
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.subscriptions.insert(i as u32, t.to_string());
                json!({"id": i, "channelId": self.channels[*t].id})
            })
            .collect();
        let msg = json!({"op": "subscribe", "subscriptions": subs}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
    }

    /// The next message on a subscribed topic; `None` after `limit` without one.
    pub fn next(&mut self, limit: Duration) -> Option<Received> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let frame = self.next_frame().unwrap_or_else(|e| panic!("the live view's connection failed: {e}"));
            if let Some(r) = frame {
                return Some(r);
            }
        }
        None
    }

    /// Reads until the server closes the connection; the messages received per topic.
    pub fn count_until_closed(mut self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        while let Ok(frame) = self.next_frame() {
            if let Some(r) = frame {
                *counts.entry(r.topic).or_default() += 1;
            }
        }
        counts
    }

    /// Reads one frame: a text message updates the server info or the channels; a binary
    /// `messageData` is returned.
    fn next_frame(&mut self) -> Result<Option<Received>, tungstenite::Error> {
        Ok(match self.ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["op"].as_str() {
                    Some("serverInfo") => self.server_info = v,
                    Some("advertise") => self.advertised(&v),
                    _ => {}
                }
                None
            }
            Ok(Message::Binary(b)) => {
                assert_eq!(b[0], 1, "a binary frame that is not messageData");
                let sub = u32::from_le_bytes(b[1..5].try_into().unwrap());
                let log_time = u64::from_le_bytes(b[5..13].try_into().unwrap());
                let topic = self.subscriptions[&sub].clone();
                Some(Received { topic, log_time, payload: b[13..].to_vec() })
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => return Err(e),
        })
    }

    fn advertised(&mut self, v: &Value) {
        for c in v["channels"].as_array().unwrap() {
            let schema = serde_json::from_str(c["schema"].as_str().unwrap()).unwrap();
            let channel = Channel {
                id: c["id"].as_u64().unwrap(),
                encoding: c["encoding"].as_str().unwrap().to_string(),
                schema_name: c["schemaName"].as_str().unwrap().to_string(),
                schema,
            };
            self.channels.insert(c["topic"].as_str().unwrap().to_string(), channel);
        }
    }
}
