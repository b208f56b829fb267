//! The prediction record (SPEC §5) and its three text forms: JSON, CSV and templates.

use reflex_config::RecordFormat;
use serde::Serialize;
// Formatting straight into the sink's reused buffer: no String per record.
use std::io::Write as _;
use std::sync::Arc;

/// One prediction, as every sink receives it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub window: u64,
    pub last_sample: u64,
    /// The last sample's timestamp in seconds; `null` when the source has none.
    pub t: Option<f64>,
    /// The final layer's output.
    pub values: Vec<f32>,
    /// `classify` only: `labels[index]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Arc<str>>,
    /// `classify` only: argmax of `values`, ties to the lowest index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// From the arrival of `last_sample` to the hand-off to the sinks, 0.1 µs resolution.
    pub latency_us: f64,
    /// Graph swaps so far, starting at 1.
    pub generation: u64,
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
    pub fn new(format: RecordFormat, template: Option<&str>, outputs: usize) -> Result<Formatter, String> {
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
                let _ = write!(out, ",{},{}", r.latency_us, r.generation);
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

fn parse_template(t: &str, outputs: usize) -> Result<Vec<Piece>, String> {
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
            '}' => return Err("template: a lone `}` (write `}}` for a brace)".into()),
            '{' => {
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => spec.push(c),
                        None => return Err(format!("template: `{{{spec}` is not closed")),
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

fn parse_field(spec: &str, outputs: usize) -> Result<Piece, String> {
    let (name, precision) = match spec.split_once(':') {
        None => (spec, None),
        Some((name, fmt)) => {
            let p = fmt
                .strip_prefix('.')
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|p| *p <= 17)
                .ok_or_else(|| format!("template: `{{{spec}}}`: the only format is a precision such as `:.3`"))?;
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
        "values" => Field::Values,
        _ => {
            let i = name
                .strip_prefix("values[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or_else(|| {
                    format!(
                        "template: unknown field `{{{name}}}` (fields: window, last_sample, t, label, index, latency_us, generation, values, values[i])"
                    )
                })?;
            if i >= outputs {
                return Err(format!("template: `{{{name}}}` but the model outputs {outputs} values"));
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
            "{\"window\":41,\"last_sample\":455,\"t\":4.55,\"values\":[0.1,2.3,-0.4,0.0],\"label\":\"run\",\"index\":1,\"latency_us\":57.2,\"generation\":1}\n"
        );
        let regress = Prediction { t: None, label: None, index: None, ..record() };
        let j: serde_json::Value = serde_json::from_str(&text(&Formatter(Kind::Json), &regress, false)).unwrap();
        assert!(j["t"].is_null() && j.get("label").is_none() && j.get("index").is_none());
    }

    #[test]
    fn csv_puts_the_values_last() {
        assert_eq!(text(&Formatter(Kind::Csv), &record(), true), "41,455,4.55,run,1,57.2,1,0.1,2.3,-0.4,0\n");
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
        let bad = |t: &str| Formatter::new(RecordFormat::Template, Some(t), 4).unwrap_err();
        assert!(bad("{values[4]}").contains("outputs 4 values"));
        assert!(bad("{speed}").contains("unknown field"));
        assert!(bad("{index").contains("not closed"));
        assert!(bad("{t:x}").contains("precision"));
        assert!(bad("}").contains("lone"));
    }

    #[test]
    fn argmax_ties_go_to_the_lowest_index() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.0]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}
