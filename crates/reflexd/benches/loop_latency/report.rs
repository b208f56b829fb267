//! Reading the contenders' `stopped` lines, and printing: one line per run, a summary per
//! contender, the ratios to the Python loop, and the JSON of it all.

use crate::contender::Contender;
use crate::drive::Outcome;
use serde_json::{json, Value};

/// Stage names a breakdown may carry.
const STAGES: [&str; 6] = ["read", "decode", "queue", "inference", "sink", "total"];

/// The `key=value` fields of the last `stopped` line of a log (the daemon's tracing line or the
/// Python loop's), read tolerantly: values may be quoted, unknown keys are kept.
#[derive(Default)]
pub struct Stopped {
    fields: Vec<(String, String)>,
    /// `breakdown…` fields, each a list of `stage=µs`: the daemon writes them unquoted
    /// (`breakdown_p50_us=decode=1.2 queue=3.4 …`), so the stages after the first come as
    /// fields of their own and are gathered back here.
    breakdown: Vec<(String, Vec<(String, String)>)>,
}

impl Stopped {
    pub fn find(log: &str) -> Stopped {
        let mut s = Stopped::default();
        let Some(line) = log.lines().rev().find(|l| l.contains("stopped ")) else {
            return s;
        };
        let rest = &line[line.find("stopped ").map_or(0, |i| i + "stopped ".len())..];
        for (k, v) in fields(rest) {
            if k.starts_with("breakdown") {
                let stages = v.split_whitespace().filter_map(|p| p.split_once('='));
                s.breakdown.push((k, stages.map(|(a, b)| (a.to_string(), b.to_string())).collect()));
            } else if let Some(last) = s.breakdown.last_mut().filter(|_| STAGES.contains(&k.as_str())) {
                last.1.push((k, v));
            } else {
                s.fields.push((k, v));
            }
        }
        s
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every field, for the JSON output.
    pub fn all(&self) -> serde_json::Map<String, Value> {
        self.fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
    }

    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// The per-stage latency breakdown, when the daemon reports one: `(field, [(stage, µs)])`.
    pub fn breakdown(&self) -> impl Iterator<Item = &(String, Vec<(String, String)>)> {
        self.breakdown.iter().filter(|(_, stages)| !stages.is_empty())
    }

    pub fn breakdown_json(&self) -> Value {
        let number = |v: &str| v.parse::<f64>().map_or_else(|_| Value::String(v.to_string()), Value::from);
        let all = self.breakdown().map(|(k, stages)| {
            (k.clone(), Value::Object(stages.iter().map(|(s, v)| (s.clone(), number(v))).collect()))
        });
        Value::Object(all.collect())
    }
}

/// `a=1 b="x y" c=z` → pairs; a token without `=` is skipped.
fn fields(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let Some(eq) = rest[..end].find('=') else {
            rest = rest[end..].trim_start();
            continue;
        };
        let key = rest[..eq].to_string();
        let after = &rest[eq + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => {
                let close = q.find('"').unwrap_or(q.len());
                (q[..close].to_string(), q.get(close + 1..).unwrap_or(""))
            }
            None => {
                let e = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..e].to_string(), &after[e..])
            }
        };
        out.push((key, value));
        rest = next.trim_start();
    }
    out
}

/// Nearest-rank percentile of sorted values.
pub fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// Where the human-readable lines go: stdout, or stderr when stdout is for `--json`.
pub struct Out {
    pub json: bool,
    /// `--late-ms`, in µs.
    pub late_us: f64,
}

impl Out {
    pub fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    pub fn run(&self, c: Contender, rate: f64, o: &Outcome) {
        self.say(&format!(
            "  {:<9} {rate:>7.0} Hz  windows {:>7}  received {:>7}  dropped {:>5}  missing {:>5}  late {:>5}  \
             p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>9.1} µs  writer lag {:>6.2} ms",
            c.name(),
            o.windows,
            o.received,
            o.dropped(),
            o.missing(),
            o.late(self.late_us),
            pct(&o.latencies_us, 0.5),
            pct(&o.latencies_us, 0.99),
            o.latencies_us.last().copied().unwrap_or(f64::NAN),
            o.lag_max_us / 1000.0,
        ));
        for w in &o.warnings {
            self.say(&format!("            warning: {w}"));
        }
        for k in ["decode_errors", "lost_samples", "inference_errors", "sink_lost"] {
            if let Some(v) = o.stopped.get(k).filter(|v| *v != "0") {
                self.say(&format!("            {k}={v}"));
            }
        }
        for (k, stages) in o.stopped.breakdown().filter(|_| o.received > 0) {
            let text: Vec<String> = stages.iter().map(|(s, v)| format!("{s} {v}")).collect();
            self.say(&format!("            {k}: {}", text.join("  ")));
        }
    }
}

/// One contender's runs at the base rate, pooled.
pub struct Pooled {
    pub contender: Contender,
    pub windows: usize,
    pub received: usize,
    pub dropped: u64,
    pub missing: u64,
    /// Datagrams later than `--late-ms`.
    pub late: usize,
    pub latencies_us: Vec<f64>,
    pub max_rate: Option<f64>,
}

impl Pooled {
    pub fn new(contender: Contender, runs: &[Outcome], late_us: f64) -> Pooled {
        let mut latencies_us: Vec<f64> = runs.iter().flat_map(|o| o.latencies_us.iter().copied()).collect();
        latencies_us.sort_by(f64::total_cmp);
        Pooled {
            contender,
            windows: runs.iter().map(|o| o.windows).sum(),
            received: runs.iter().map(|o| o.received).sum(),
            dropped: runs.iter().map(Outcome::dropped).sum(),
            missing: runs.iter().map(Outcome::missing).sum(),
            late: runs.iter().map(|o| o.late(late_us)).sum(),
            latencies_us,
            max_rate: None,
        }
    }

    fn p(&self, q: f64) -> f64 {
        pct(&self.latencies_us, q)
    }

    fn max(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(f64::NAN)
    }

    pub fn json(&self) -> Value {
        json!({
            "windows": self.windows, "received": self.received, "dropped": self.dropped,
            "missing": self.missing, "late": self.late, "p50_us": self.p(0.5), "p99_us": self.p(0.99), "max_us": self.max(),
            "max_rate_hz": self.max_rate,
        })
    }
}

pub fn summary(out: &Out, pooled: &[Pooled]) {
    out.say(&format!(
        "\n  {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>13}",
        "", "windows", "received", "dropped", "missing", "late", "p50 µs", "p99 µs", "max µs", "highest Hz"
    ));
    for p in pooled {
        out.say(&format!(
            "  {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9.1} {:>9.1} {:>10.1} {:>13}",
            p.contender.name(),
            p.windows,
            p.received,
            p.dropped,
            p.missing,
            p.late,
            p.p(0.5),
            p.p(0.99),
            p.max(),
            p.max_rate.map_or("-".to_string(), |r| format!("{r:.0}"))
        ));
    }
}

/// Each daemon variant ÷ the Python loop: latencies (below 1: the daemon is faster) and the
/// highest rate (above 1: the daemon sustains more).
pub fn ratios(out: &Out, pooled: &[Pooled]) -> Value {
    let Some(py) = pooled.iter().find(|p| p.contender == Contender::Python) else {
        return json!({});
    };
    let mut all = serde_json::Map::new();
    for d in pooled.iter().filter(|p| p.contender != Contender::Python) {
        let rate = d.max_rate.zip(py.max_rate).map(|(a, b)| a / b).filter(|r| r.is_finite());
        let r = json!({
            "p50": d.p(0.5) / py.p(0.5), "p99": d.p(0.99) / py.p(0.99), "max": d.max() / py.max(),
            "max_rate": rate,
        });
        out.say(&format!(
            "  {} ÷ python: p50 {:.2}  p99 {:.2}  max {:.2}{}",
            d.contender.name(),
            d.p(0.5) / py.p(0.5),
            d.p(0.99) / py.p(0.99),
            d.max() / py.max(),
            rate.filter(|r| r.is_finite()).map_or(String::new(), |r| format!("  highest rate {r:.2}"))
        ));
        all.insert(format!("{}/python", d.contender.name()), r);
    }
    Value::Object(all)
}
