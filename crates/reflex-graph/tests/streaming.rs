//! Streaming inference: with a hop set, a window that is the previous one moved on by the hop
//! reuses the previous activations. Its outputs must be those of whole-window evaluation, and
//! PyTorch's (tools/make_stream_fixtures.py cuts overlapping windows from one signal).

mod common;

use reflex_graph::Stream;
use std::path::{Path, PathBuf};

const HOPS: [usize; 6] = [1, 2, 3, 4, 16, 64];

fn dirs() -> Vec<PathBuf> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut dirs = common::fixtures();
    for v in ["standard", "dilated", "depthwise", "grouped", "residual"] {
        dirs.push(examples.join("bench").join(v));
        dirs.push(examples.join("models").join(v));
    }
    dirs
}

/// Window `i` of a `[C, T]` signal at `hop`.
fn window(signal: &[f32], t: usize, len: usize, hop: usize, i: usize) -> Vec<f32> {
    signal.chunks_exact(t).flat_map(|row| &row[i * hop..i * hop + len]).copied().collect()
}

/// A smooth deterministic signal, `[channels, t]`.
fn signal(channels: usize, t: usize) -> Vec<f32> {
    let mut s: u32 = 0x2545_F491;
    let mut v = Vec::with_capacity(channels * t);
    for c in 0..channels {
        let mut x = 0.0f32;
        for j in 0..t {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            x = 0.9 * x + (s as f32 / u32::MAX as f32 - 0.5);
            v.push(x + (j as f32 * 0.07 * (c + 1) as f32).sin());
        }
    }
    v
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every fixture and model at every hop below its window length, windows cut from one signal:
/// PyTorch's outputs (tools/make_stream_fixtures.py), and every window after the first reuses
/// the previous one's activations wherever a layer can.
#[test]
fn streaming_matches_pytorch() {
    for dir in dirs() {
        let st = reflex_graph::Weights::open(&dir.join("stream.safetensors")).expect("stream.safetensors");
        let (signal, want) = (st.get("stream").expect("stream"), st.get("output").expect("output"));
        let (t, per) = (signal.shape[1], want.shape[1]);
        for hop in HOPS {
            let (config, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
            let len = config.window.length;
            if hop >= len {
                continue;
            }
            graph.set_hop(hop);
            let streams = graph.layers().iter().any(|l| matches!(l.stream, Stream::Partial { .. }));
            for i in 0..=(t - len) / hop {
                let w = window(&signal.data, t, len, hop, i);
                let got = graph.run(&w).unwrap();
                let at = i * hop * per;
                common::close(got, &want.data[at..at + per])
                    .unwrap_or_else(|e| panic!("{} hop {hop} window {i}: {e}", dir.display()));
                assert_eq!(graph.streamed(), i > 0 && streams, "{} hop {hop} window {i}", dir.display());
            }
        }
    }
}

/// Every fixture and model, every hop, windows in order with a gap (a dropped window) in the
/// middle, past the point where a streamed layer's buffer is copied back to its start: the
/// streamed outputs are the whole-window outputs, within 1e-5.
#[test]
fn streaming_equals_whole_windows() {
    let mut streamed_layers = 0;
    for dir in dirs() {
        let (config, mut whole) = common::build(&dir.join("reflex.toml")).unwrap();
        let (c, len) = (config.source.channels, config.window.length);
        for hop in HOPS.into_iter().filter(|&h| h < len) {
            let (_, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
            graph.set_hop(hop);
            streamed_layers += graph.layers().iter().filter(|l| matches!(l.stream, Stream::Partial { .. })).count();
            // More windows than the graph slides a buffer before copying it back (64).
            let n = 72;
            let t = len + (n - 1) * hop;
            let x = signal(c, t);
            for i in (0..n).filter(|&i| i != n / 2) {
                let w = window(&x, t, len, hop, i);
                let want = whole.run(&w).unwrap().to_vec();
                let got = graph.run(&w).unwrap().to_vec();
                let reused = i > 0
                    && i != n / 2 + 1
                    && graph.layers().iter().any(|l| matches!(l.stream, Stream::Partial { .. }));
                assert_eq!(graph.streamed(), reused, "{} hop {hop} window {i}", dir.display());
                let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let d = max_diff(&got, &want);
                assert!(d <= 1e-5 * scale, "{} hop {hop} window {i}: differs by {d}", dir.display());
            }
        }
    }
    // The test would pass vacuously if nothing streamed.
    assert!(streamed_layers > 500, "only {streamed_layers} layers streamed");
}

/// A window of the wrong length is refused without touching the activations; a window that
/// does not follow the previous one (a dropped window, a gap) is computed whole, and the ones
/// after it stream again.
#[test]
fn a_window_that_does_not_follow_is_computed_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bench/standard");
    let (config, mut whole) = common::build(&dir.join("reflex.toml")).unwrap();
    let (_, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
    let (c, len, hop) = (config.source.channels, config.window.length, 4);
    graph.set_hop(hop);
    let t = len + 40 * hop;
    let x = signal(c, t);
    for i in [0, 1, 2, 7, 8, 3, 4, 5, 30, 31] {
        let w = window(&x, t, len, hop, i);
        if i == 8 {
            assert!(graph.run(&w[1..]).is_err());
        }
        let want = whole.run(&w).unwrap().to_vec();
        assert!(max_diff(graph.run(&w).unwrap(), &want) <= 1e-5, "window {i}");
        assert_eq!(graph.streamed(), [1, 2, 4, 5, 8, 31].contains(&i), "window {i}");
    }
}

/// `Stream` per layer of the six-layer bench models at hop 16: every convolution streams
/// and recomputes the new positions plus its padded edges; the global pool and the linear
/// layer after it run whole.
#[test]
fn the_plan_recomputes_new_positions_and_edges() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bench/standard");
    let (_, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
    graph.set_hop(16);
    let layers = graph.layers();
    // k = 5, "same": each layer adds 2 positions at each edge to what the previous recomputed.
    for (i, l) in layers.iter().take(6).enumerate() {
        let edge = 2 * (i + 1);
        assert_eq!(l.stream, Stream::Partial { recomputed: 16 + 2 * edge, length: 128 }, "layer {}", l.name);
    }
    for l in &layers[6..] {
        assert!(matches!(l.stream, Stream::Whole(_)), "{}: {:?}", l.name, l.stream);
    }
    graph.set_hop(128);
    assert!(graph.layers().iter().all(|l| l.stream == Stream::Off));
}
