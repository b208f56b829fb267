//! `reflexd info LOG.mcap`: what a recording holds — its metadata, channels (topics, message
//! counts), duration, generations, events and label marks — without replaying it.

use reflex_io::mcap::McapFile;
use reflex_io::recording::{LabelMark, SwapEvent, EVENTS, LABELS, METADATA};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// What `info` found, ready to print.
pub fn describe(path: &Path) -> anyhow::Result<String> {
    let file = McapFile::open(path)?;
    let metadata = file.metadata(METADATA);
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} bytes", path.display(), file.bytes().len());
    let list = |key: &str| metadata.get(key).and_then(|v| serde_json::from_str::<Vec<String>>(v).ok());
    let names = list("channel_names");
    let units = list("units");
    for (key, value) in &metadata {
        if matches!(key.as_str(), "config" | "channel_names" | "units") {
            continue;
        }
        let _ = writeln!(out, "{key}: {value}");
    }
    if let Some(names) = &names {
        let shown: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| match units.as_ref().and_then(|u| u.get(i)).filter(|u| !u.is_empty()) {
                Some(u) => format!("{n} [{u}]"),
                None => n.clone(),
            })
            .collect();
        let _ = writeln!(out, "channel names: {}", shown.join(", "));
    }

    let (mut counts, mut span, mut swaps) = (BTreeMap::<String, u64>::new(), None, Vec::new());
    let (mut events, mut marks) = (BTreeMap::<String, u64>::new(), Vec::new());
    let mut messages = file.messages();
    while let Some(m) = messages.next() {
        let topic = m.topic.unwrap_or("?");
        *counts.entry(topic.to_string()).or_default() += 1;
        let (first, _) = span.unwrap_or((m.log_time, m.log_time));
        span = Some((first.min(m.log_time), m.log_time));
        if topic == LABELS {
            marks.push((m.log_time, serde_json::from_slice::<LabelMark>(m.data).ok()));
        }
        if topic == EVENTS {
            let kind = match serde_json::from_slice::<SwapEvent>(m.data) {
                Ok(swap) if swap.event == "swap" => {
                    swaps.push((m.log_time, swap));
                    "swap".to_string()
                }
                _ => serde_json::from_slice::<serde_json::Value>(m.data)
                    .ok()
                    .and_then(|e| e["event"].as_str().map(String::from))
                    .unwrap_or_else(|| "unknown".into()),
            };
            *events.entry(kind).or_default() += 1;
        }
    }
    let seconds = span.map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / 1e9);
    let _ = writeln!(out, "duration: {seconds:.3} s");
    let _ = writeln!(out, "topics:");
    for (topic, n) in &counts {
        let _ = writeln!(out, "  {topic}: {n} messages");
    }
    let _ = writeln!(out, "generations: {}", 1 + swaps.len());
    let listed: Vec<String> = events.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(out, "events: {}", if listed.is_empty() { "none".to_string() } else { listed.join(", ") });
    for (ns, swap) in &swaps {
        let at = span.map_or(0.0, |(a, _)| ns.saturating_sub(a) as f64 / 1e9);
        let weights = swap.weights_sha256.as_deref().map_or("-", |w| &w[..w.len().min(12)]);
        let _ = writeln!(
            out,
            "  {at:.3} s: swap to generation {} (weights sha256 {weights}…, {} plugin libraries)",
            swap.generation,
            swap.plugin_sha256.len()
        );
    }
    list_marks(&mut out, &marks, span.map_or(0, |(a, _)| a));
    if let Some(damage) = messages.damage() {
        let how = if damage.is_cut_short() { "cut short" } else { "damaged" };
        let _ = writeln!(out, "{how}: {damage} (everything before it is listed)");
    }
    Ok(out)
}

/// At most this many marks are listed one by one.
const MARKS_LISTED: usize = 50;

/// `labels: 3 marks`, then each: its time from the start, its sample and label (`-`: the end of
/// a labelled span); `None` for a message that does not parse.
fn list_marks(out: &mut String, marks: &[(u64, Option<LabelMark>)], start: u64) {
    let _ = writeln!(out, "labels: {} marks", marks.len());
    for (ns, mark) in marks.iter().take(MARKS_LISTED) {
        let at = ns.saturating_sub(start) as f64 / 1e9;
        let _ = match mark {
            Some(m) => writeln!(out, "  {at:.3} s: sample {}: {}", m.sample, m.label.as_deref().unwrap_or("-")),
            None => writeln!(out, "  {at:.3} s: not a label mark"),
        };
    }
    if marks.len() > MARKS_LISTED {
        let _ = writeln!(out, "  … {} more", marks.len() - MARKS_LISTED);
    }
}

pub fn run(path: &Path) -> anyhow::Result<()> {
    print!("{}", describe(path)?);
    Ok(())
}
