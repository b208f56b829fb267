
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

    /// The hash is the file's word: cut where a character ends, not at byte 12.
    #[test]
    fn a_weights_hash_that_is_not_hex_is_cut_between_characters() {
        let text = describe(&with_swap("aéééééééé"));
        assert!(text.contains("weights sha256 aéééééé…"), "{text}");
    }
}
