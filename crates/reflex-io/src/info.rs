//! `reflexd info LOG.mcap`: what a recording holds — its metadata, channels (topics, message
//! counts), duration, generations, events and label marks — without replaying it. Here rather than in the
//! binary so that the MCAP fuzz target reads every recording the way `info` does.

use crate::mcap::McapFile;
use crate::recording::{LabelMark, SwapEvent, EVENTS, LABELS, METADATA};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What `info` prints about `file`.
pub fn describe(file: &McapFile) -> String {
    let metadata = file.metadata(METADATA);
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} bytes", file.path().display(), file.bytes().len());
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
    messages(file, &mut out);
    out
}

/// The messages' part: counts per topic, duration, generations and events.
fn messages(file: &McapFile, out: &mut String) {
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
        // The first 12 characters: the hash is the file's word, and may not be hex.
        let weights =
            swap.weights_sha256.as_deref().map_or("-", |w| w.char_indices().nth(12).map_or(w, |(i, _)| &w[..i]));
        let _ = writeln!(
            out,
            "  {at:.3} s: swap to generation {} (weights sha256 {weights}…, {} plugin libraries)",
            swap.generation,
            swap.plugin_sha256.len()
        );
    }
    list_marks(out, &marks, span.map_or(0, |(a, _)| a));
    if let Some(damage) = messages.damage() {
        let how = if damage.is_cut_short() { "cut short" } else { "damaged" };
        let _ = writeln!(out, "{how}: {damage} (everything before it is listed)");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcap::{Compression, McapWriter};
    use std::path::Path;

    /// A recording with one swap event whose weights hash is `hash`.
    fn with_swap(hash: &str) -> McapFile {
        let mut w = McapWriter::new(Vec::new(), "", "test", 1 << 20, Compression::None).unwrap();
        let events = w.add_channel(0, EVENTS, "json").unwrap();
        let event = serde_json::json!({"event": "swap", "generation": 2, "config": "", "weights_sha256": hash});
        w.write_message(events, 0, 1_000, event.to_string().as_bytes()).unwrap();
        McapFile::from_bytes(Path::new("swap.mcap"), w.finish().unwrap()).unwrap()
    }

    #[test]
    fn a_swap_lists_the_start_of_its_weights_hash() {
        let text = describe(&with_swap(&"ab".repeat(32)));
        assert!(text.contains("generations: 2\nevents: 1 swap\n"), "{text}");
        assert!(text.contains("swap to generation 2 (weights sha256 abababababab…, 0 plugin libraries)"), "{text}");
    }

    /// Found while writing the mcap fuzz target (its input: fuzz/corpus/mcap/
    /// regression-swap-hash-not-ascii): the hash was cut at byte 12, inside a character, and
    /// `reflexd info` panicked. It is the file's word: cut after 12 characters.
    #[test]
    fn a_weights_hash_that_is_not_hex_is_cut_between_characters() {
        let text = describe(&with_swap(&format!("a{}", "é".repeat(14))));
        assert!(text.contains(&format!("weights sha256 a{}…", "é".repeat(11))), "{text}");
    }
}
