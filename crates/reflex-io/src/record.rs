//! The prediction record (docs/records.md) and its three text forms: JSON, CSV and templates.

use crate::error::TemplateError;
use reflex_config::RecordFormat;
use serde::{Deserialize, Serialize};
// Formatting straight into the sink's reused buffer: no String per record.
use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;

/// One prediction, as every sink receives it and as a recording holds it (`replay --plot`
/// reads it back).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The window's number.
    pub window: u64,
    /// The number of the window's last sample.
    pub last_sample: u64,
    /// The last sample's timestamp in seconds; `null` when the source has none.
    pub t: Option<f64>,
    /// The final layer's output (JSON writes a non-finite value as `null`; it reads back NaN).
    #[serde(deserialize_with = "nan_for_null")]
    pub values: Vec<f32>,
    /// `classify` only: `labels[index]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Arc<str>>,
    /// `classify` only: argmax of `values`, ties to the lowest index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// From the arrival of `last_sample` to the hand-off to the sinks, 0.1 µs resolution.
    pub latency_us: f64,
    /// Graph swaps so far, starting at 1.
    pub generation: u64,
    /// `ok` for a prediction of the graph; otherwise why this is a fallback record
    /// (docs/records.md). Recordings made before it read back as `ok`.
    #[serde(default)]
    pub health: Health,
}

/// Whether a record is the graph's prediction, or a fallback and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The graph's prediction for this window.
    #[default]
    Ok,
    /// No sample for `stale_after_ms`.
    Stale,
    /// The graph produced NaN or ±inf: those values were withheld.
    Nonfinite,
    /// The graph or a plugin failed on this window.
    Error,
    /// Inference did not finish within `deadline_ms`.
    Late,
}

impl Health {
    /// The word in records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Stale => "stale",
            Health::Nonfinite => "nonfinite",
            Health::Error => "error",
            Health::Late => "late",
        }
    }
}

fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    let values = Vec::<Option<f32>>::deserialize(d)?;
    Ok(values.into_iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

/// Prediction records used over and over, so that a window costs no allocation: every sink
/// and the recorder get an `Arc` of the same record, and once they have all dropped it the
/// record is filled again for a later window.
///
/// Records are taken back in the order they were handed out: sinks and the recorder finish
/// (or drop) records oldest first, so the oldest is the one to be free. While it is still held
/// a new record is made, so the pool grows to the records in flight — the warm-up — and then
/// stops growing. It holds at most `capacity` records (reserved up front); past that the
/// oldest is left to its holders and a new one made.
pub struct RecordPool {
    /// Every record handed out, oldest first.
    ring: VecDeque<Arc<Prediction>>,
    capacity: usize,
}

impl RecordPool {
    /// A pool of at most `capacity` records, `ready` of them made now with room for `values`
    /// values each.
    pub fn new(capacity: usize, ready: usize, values: usize) -> RecordPool {
        let capacity = capacity.max(1);
        let mut ring = VecDeque::with_capacity(capacity);
        for _ in 0..ready.min(capacity) {
            ring.push_back(Arc::new(Prediction { values: Vec::with_capacity(values), ..Prediction::default() }));
        }
        RecordPool { ring, capacity }
    }

    /// A record nobody else holds, filled by `fill` (its previous contents are there to be
    /// overwritten, `values` with its capacity).
    pub fn next(&mut self, fill: impl FnOnce(&mut Prediction)) -> Arc<Prediction> {
        let mut record = match self.ring.pop_front() {
            // Nobody else holds it (and nobody can start to: no other reference exists).
            Some(oldest) if Arc::strong_count(&oldest) == 1 && Arc::weak_count(&oldest) == 0 => oldest,
            Some(held) => {
                if self.ring.len() + 1 < self.capacity {
                    // Still in use: it is the next one to try.
                    self.ring.push_front(held);
                }
                Arc::default()
            }
            None => Arc::default(),
        };
        // Unique: just made, or checked above.
        if let Some(r) = Arc::get_mut(&mut record) {
            fill(r);
        }
        self.ring.push_back(record.clone());
        record
    }

    /// Records in the pool.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the pool holds none.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// argmax with ties to the lowest index; `None` for an empty slice.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        // NaN never wins; a strictly greater value does.
        if best.is_none_or(|(_, b)| v > b) && !v.is_nan() {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Rounds a latency to the record's 0.1 µs resolution.
pub fn latency_us(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

/// A template field: `{window}`, `{values[2]:.3}`, …
#[derive(Clone, Debug, PartialEq)]
enum Field {
    Window,
    LastSample,
    T,
    Label,
    Index,
    LatencyUs,
    Generation,
    Health,
    /// All values, comma-separated.
    Values,
    Value(usize),
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Field(Field, Option<usize>),
}

/// How a sink turns a record into bytes; parsed and checked once, at build time.
#[derive(Clone, Debug, PartialEq)]
pub struct Formatter(Kind);

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Json,
    Csv,
    Template(Vec<Piece>),
}

impl Formatter {
    /// `outputs` is the number of values the graph produces (to check `{values[i]}`).
    pub fn new(format: RecordFormat, template: Option<&str>, outputs: usize) -> Result<Formatter, TemplateError> {
        match format {
            RecordFormat::Json => Ok(Formatter(Kind::Json)),
            RecordFormat::Csv => Ok(Formatter(Kind::Csv)),
            RecordFormat::Template => {
                parse_template(template.unwrap_or_default(), outputs).map(|p| Formatter(Kind::Template(p)))
            }
        }
    }

    /// Appends the record to `out`; JSON and CSV end with a newline when `line` is set.
    pub fn write(&self, r: &Prediction, out: &mut Vec<u8>, line: bool) {
        match &self.0 {
            Kind::Json => {
                // Serializing plain numbers and strings into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, r);
                if line {
                    out.push(b'\n');
                }
            }
            Kind::Csv => {
                let _ = write!(out, "{},{},", r.window, r.last_sample);
                if let Some(t) = r.t {
                    let _ = write!(out, "{t}");
                }
                let _ = write!(out, ",{},", r.label.as_deref().unwrap_or(""));
                if let Some(i) = r.index {
                    let _ = write!(out, "{i}");
                }
                let _ = write!(out, ",{},{},{}", r.latency_us, r.generation, r.health.as_str());
                for v in &r.values {
                    let _ = write!(out, ",{v}");
                }
                if line {
                    out.push(b'\n');
                }
            }
            Kind::Template(pieces) => {
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                        Piece::Field(f, precision) => field(out, r, f, *precision),
                    }
                }
            }
        }
    }
}

fn number(s: &mut Vec<u8>, v: f64, precision: Option<usize>) {
    let _ = match precision {
        Some(p) => write!(s, "{v:.p$}"),
        None => write!(s, "{v}"),
    };
}

fn field(s: &mut Vec<u8>, r: &Prediction, f: &Field, precision: Option<usize>) {
    match f {
        Field::Window => number(s, r.window as f64, precision),
        Field::LastSample => number(s, r.last_sample as f64, precision),
        Field::T => match r.t {
            Some(t) => number(s, t, precision),
            None => s.extend_from_slice(b"null"),
        },
        Field::Label => s.extend_from_slice(r.label.as_deref().unwrap_or("").as_bytes()),
        Field::Index => {
            if let Some(i) = r.index {
                let _ = write!(s, "{i}");
            }
        }
        Field::LatencyUs => number(s, r.latency_us, precision),
        Field::Generation => number(s, r.generation as f64, precision),
        Field::Health => s.extend_from_slice(r.health.as_str().as_bytes()),
        Field::Values => {
            for (i, v) in r.values.iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                match precision {
                    Some(_) => number(s, *v as f64, precision),
                    None => {
                        let _ = write!(s, "{v}");
                    }
                }
            }
        }
        Field::Value(i) => match (r.values.get(*i), precision) {
            (Some(v), Some(_)) => number(s, *v as f64, precision),
            (Some(v), None) => {
                let _ = write!(s, "{v}");
            }
            (None, _) => {}
        },
    }
}

fn parse_template(t: &str, outputs: usize) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => return Err(TemplateError::LoneBrace),
            '{' => {
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => spec.push(c),
                        None => return Err(TemplateError::NotClosed { spec }),
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(parse_field(&spec, outputs)?);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn parse_field(spec: &str, outputs: usize) -> Result<Piece, TemplateError> {
    let (name, precision) = match spec.split_once(':') {
        None => (spec, None),
        Some((name, fmt)) => {
            let p = fmt
                .strip_prefix('.')
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|p| *p <= 17)
                .ok_or_else(|| TemplateError::Format { spec: spec.into() })?;
            (name, Some(p))
        }
    };
    let f = match name {
        "window" => Field::Window,
        "last_sample" => Field::LastSample,
        "t" => Field::T,
        "label" => Field::Label,
        "index" => Field::Index,
        "latency_us" => Field::LatencyUs,
        "generation" => Field::Generation,
        "health" => Field::Health,
        "values" => Field::Values,
        _ => {
            let i = name
                .strip_prefix("values[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or_else(|| TemplateError::UnknownField { name: name.into() })?;
            if i >= outputs {
                return Err(TemplateError::PastOutputs { name: name.into(), outputs });
            }
            Field::Value(i)
        }
    };
    Ok(Piece::Field(f, precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Prediction {
        Prediction {
            window: 41,
            last_sample: 455,
            t: Some(4.55),
            values: vec![0.1, 2.3, -0.4, 0.0],
            label: Some(Arc::from("run")),
            index: Some(1),
            latency_us: 57.2,
            generation: 1,
            health: Health::Ok,
        }
    }

    fn text(f: &Formatter, r: &Prediction, line: bool) -> String {
        let mut v = Vec::new();
        f.write(r, &mut v, line);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn json_is_the_spec_record() {
        assert_eq!(
            text(&Formatter(Kind::Json), &record(), true),
            "{\"window\":41,\"last_sample\":455,\"t\":4.55,\"values\":[0.1,2.3,-0.4,0.0],\"label\":\"run\",\"index\":1,\"latency_us\":57.2,\"generation\":1,\"health\":\"ok\"}\n"
        );
        let regress = Prediction { t: None, label: None, index: None, ..record() };
        let j: serde_json::Value = serde_json::from_str(&text(&Formatter(Kind::Json), &regress, false)).unwrap();
        assert!(j["t"].is_null() && j.get("label").is_none() && j.get("index").is_none());
    }

    #[test]
    fn csv_puts_the_values_last() {
        assert_eq!(text(&Formatter(Kind::Csv), &record(), true), "41,455,4.55,run,1,57.2,1,ok,0.1,2.3,-0.4,0\n");
    }

    #[test]
    fn templates_fill_fields_with_precision() {
        let f = Formatter::new(RecordFormat::Template, Some("TORQUE {index} {values[0]:.3} {{x}}\n"), 4).unwrap();
        assert_eq!(text(&f, &record(), true), "TORQUE 1 0.100 {x}\n");
        let f = Formatter::new(RecordFormat::Template, Some("{window};{values}"), 4).unwrap();
        assert_eq!(text(&f, &record(), true), "41;0.1,2.3,-0.4,0");
    }

    #[test]
    fn bad_templates_are_refused_with_a_reason() {
        let bad = |t: &str| Formatter::new(RecordFormat::Template, Some(t), 4).unwrap_err().to_string();
        assert!(bad("{values[4]}").contains("outputs 4 values"));
        assert!(bad("{speed}").contains("unknown field"));
        assert!(bad("{index").contains("not closed"));
        assert!(bad("{t:x}").contains("precision"));
        assert!(bad("}").contains("lone"));
    }

    #[test]
    fn the_pool_reuses_a_record_once_every_holder_dropped_it() {
        let mut pool = RecordPool::new(8, 0, 0);
        let first = pool.next(|r| r.window = 1);
        let held = first.clone(); // a sink still has it
        drop(first);
        let second = pool.next(|r| r.window = 2);
        assert!(!Arc::ptr_eq(&held, &second), "a held record is never refilled");
        assert_eq!((held.window, pool.len()), (1, 2));
        drop((held, second));
        // Both free: the oldest comes back, filled anew, values keeping their memory.
        let third = pool.next(|r| {
            r.window = 3;
            r.values.extend_from_slice(&[1.0; 10]);
        });
        let values = third.values.as_ptr();
        drop(third);
        let _ = pool.next(|_| {});
        let again = pool.next(|r| {
            r.values.clear();
            r.values.extend_from_slice(&[2.0; 10]);
        });
        assert_eq!((again.window, again.values.as_ptr(), pool.len()), (3, values, 2));
    }

    #[test]
    fn the_pool_never_holds_more_than_its_capacity() {
        let mut pool = RecordPool::new(4, 0, 0);
        let held: Vec<_> = (0..10).map(|i| pool.next(|r| r.window = i)).collect();
        assert_eq!(pool.len(), 4);
        assert_eq!(held.iter().map(|r| r.window).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        drop(held);
        for _ in 0..10 {
            let _ = pool.next(|_| {});
        }
        assert_eq!(pool.len(), 4);
    }

    #[test]
    fn argmax_ties_go_to_the_lowest_index() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}
