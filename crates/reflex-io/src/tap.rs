//! The tap: what the reader and the inference thread show the world besides the sinks — the
//! bytes read, each decoded sample, each record, the device and swap events — handed to the
//! recorder (`run --record`, [`crate::recording`]) and to the live view (`[live]`,
//! [`crate::live`]), each behind its own bounded queue.
//!
//! Both are fed by the same calls, so the live view shows exactly what a recording holds
//! (the same topics, JSON and schemas). A call never blocks and, once warm, never allocates:
//! samples travel in inline arrays (up to 16 channels), records as the very `Arc` the sinks
//! got, raw bytes in buffers the recorder hands back; the JSON is written on the consumers'
//! own threads.

use crate::live::LiveFeed;
use crate::record::Prediction;
use crate::recording::{LabelMark, RecorderFeed, SwapEvent};
use smallvec::SmallVec;
use std::sync::Arc;

/// One thing the tap hands over, with its time (Unix nanoseconds: MCAP's and Foxglove's
/// `log_time`).
pub(crate) enum Entry {
    /// Bytes as read (the recorder only: a viewer has no use for them).
    Raw { ns: u64, bytes: Vec<u8> },
    /// Sample number `n`.
    Sample { ns: u64, n: u64, t: Option<f64>, values: SmallVec<[f32; 16]> },
    /// A record, as the sinks got it.
    Prediction { ns: u64, record: Arc<Prediction> },
    /// The device was (re)opened.
    DeviceOpen { ns: u64 },
    /// A malformed line or frame was skipped before sample `next`.
    DecodeError { ns: u64, next: u64 },
    /// A whole event, as JSON (rare: a hot swap).
    Event { ns: u64, json: Vec<u8> },
    /// An activity mark, as JSON (rare: a person sends it).
    Label { ns: u64, json: Vec<u8> },
}

/// Which JSON topic an entry goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Topic {
    /// `/imu/samples`.
    Samples,
    /// `/reflex/predictions`.
    Predictions,
    /// `/reflex/events`.
    Events,
    /// `/reflex/labels`.
    Labels,
}

impl Entry {
    /// When it happened, in Unix nanoseconds.
    pub(crate) fn ns(&self) -> u64 {
        match self {
            Entry::Raw { ns, .. }
            | Entry::Sample { ns, .. }
            | Entry::Prediction { ns, .. }
            | Entry::DeviceOpen { ns }
            | Entry::DecodeError { ns, .. }
            | Entry::Event { ns, .. }
            | Entry::Label { ns, .. } => *ns,
        }
    }

    /// Writes the entry's JSON into `json` (emptied first) and says which topic it is for;
    /// `None` for raw bytes, which are no JSON. Allocates nothing while `json` has room.
    pub(crate) fn json(&self, keys: &SampleKeys, json: &mut Vec<u8>) -> Option<Topic> {
        use std::io::Write;
        json.clear();
        // Serializing numbers and strings into a Vec cannot fail.
        match self {
            Entry::Raw { .. } => return None,
            Entry::Sample { n, t, values, .. } => {
                keys.write(json, *n, *t, values);
                return Some(Topic::Samples);
            }
            Entry::Prediction { record, .. } => {
                let _ = serde_json::to_writer(&mut *json, &**record);
                return Some(Topic::Predictions);
            }
            Entry::DeviceOpen { .. } => json.extend_from_slice(br#"{"event":"device_open"}"#),
            Entry::DecodeError { next, .. } => {
                let _ = write!(json, "{{\"event\":\"decode_error\",\"sample\":{next}}}");
            }
            Entry::Event { json: event, .. } => json.extend_from_slice(event),
            Entry::Label { json: mark, .. } => {
                json.extend_from_slice(mark);
                return Some(Topic::Labels);
            }
        }
        Some(Topic::Events)
    }
}

/// `,"acc_x":` for each channel, made once: a sample's JSON is written without allocating.
pub(crate) struct SampleKeys(Vec<Vec<u8>>);

impl SampleKeys {
    pub(crate) fn new(names: &[String]) -> SampleKeys {
        let key = |n: &String| {
            let mut k = b",".to_vec();
            let _ = serde_json::to_writer(&mut k, n);
            k.push(b':');
            k
        };
        SampleKeys(names.iter().map(key).collect())
    }

    /// `{"sample":12,"t":0.05,"acc_x":0.1,…}`; a value that is not finite is `null`; a value
    /// past the names gets `chN`.
    fn write(&self, json: &mut Vec<u8>, n: u64, t: Option<f64>, values: &[f32]) {
        use std::io::Write;
        let _ = write!(json, "{{\"sample\":{n},\"t\":");
        let _ = serde_json::to_writer(&mut *json, &t);
        for (i, v) in values.iter().enumerate() {
            match self.0.get(i) {
                Some(k) => json.extend_from_slice(k),
                None => {
                    let _ = write!(json, ",\"ch{i}\":");
                }
            }
            let _ = serde_json::to_writer(&mut *json, v);
        }
        json.push(b'}');
    }
}

/// The sending side, cloned into the reader and the inference thread. The default taps
/// nothing.
#[derive(Clone, Default)]
pub struct Tap {
    recorder: Option<RecorderFeed>,
    live: Option<LiveFeed>,
}

impl Tap {
    /// A tap to the recorder and the live view, when there are.
    pub fn new(recorder: Option<&crate::recording::Recorder>, live: Option<&crate::live::LiveView>) -> Tap {
        Tap { recorder: recorder.map(|r| r.feed()), live: live.map(|l| l.feed()) }
    }

    /// Hands an entry to each consumer; `make` runs once per consumer, so that nothing is
    /// built for none and nothing is cloned.
    fn send(&self, make: impl Fn() -> Entry) {
        if let Some(r) = &self.recorder {
            r.send(make());
        }
        if let Some(l) = &self.live {
            l.send(make());
        }
    }

    /// Bytes as read, received at `ns` (Unix nanoseconds).
    pub fn raw(&self, ns: u64, bytes: &[u8]) {
        if let Some(r) = &self.recorder {
            r.send(Entry::Raw { ns, bytes: r.buffer(bytes) });
        }
    }

    /// Sample number `n`, its time and values.
    pub fn sample(&self, ns: u64, n: u64, t: Option<f64>, values: &[f32]) {
        self.send(|| Entry::Sample { ns, n, t, values: SmallVec::from_slice(values) });
    }

    /// A prediction record, as the sinks got it.
    pub fn prediction(&self, ns: u64, record: &Arc<Prediction>) {
        self.send(|| Entry::Prediction { ns, record: record.clone() });
    }

    /// The device was (re)opened: a replay starts a fresh decoder here.
    pub fn device_open(&self, ns: u64) {
        self.send(|| Entry::DeviceOpen { ns });
    }

    /// A malformed line or frame, skipped before sample number `next` was decoded.
    pub fn decode_error(&self, ns: u64, next: u64) {
        self.send(|| Entry::DecodeError { ns, next });
    }

    /// An activity mark received at `ns`. Allocates (the mark's JSON): marks come from a
    /// person, off the hot path.
    pub fn label(&self, ns: u64, mark: &LabelMark) {
        if self.recorder.is_none() && self.live.is_none() {
            return;
        }
        if let Ok(json) = serde_json::to_vec(mark) {
            self.send(|| Entry::Label { ns, json: json.clone() });
        }
    }

    /// A hot swap: the windows from now on are computed by `swap.generation`. Allocates (the
    /// event's JSON): a swap is no steady-state event.
    pub fn swap(&self, ns: u64, swap: &SwapEvent) {
        if self.recorder.is_none() && self.live.is_none() {
            return;
        }
        if let Ok(json) = serde_json::to_vec(swap) {
            self.send(|| Entry::Event { ns, json: json.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_the_recordings_json() {
        let keys = SampleKeys::new(&["acc_x".to_string(), "gyr \"z\"".to_string()]);
        let mut json = Vec::new();
        let sample = Entry::Sample { ns: 1, n: 3, t: Some(0.5), values: SmallVec::from_slice(&[1.0, f32::NAN, 2.5]) };
        assert_eq!(sample.json(&keys, &mut json), Some(Topic::Samples));
        assert_eq!(json, br#"{"sample":3,"t":0.5,"acc_x":1.0,"gyr \"z\"":null,"ch2":2.5}"#);
        assert_eq!(Entry::DecodeError { ns: 2, next: 7 }.json(&keys, &mut json), Some(Topic::Events));
        assert_eq!(json, br#"{"event":"decode_error","sample":7}"#);
        assert_eq!(Entry::Raw { ns: 3, bytes: vec![1] }.json(&keys, &mut json), None);
    }
}
