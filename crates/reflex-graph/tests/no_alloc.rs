//! The forward pass allocates nothing once the graph is built: counted with a global allocator
//! on every fixture and benchmark model (plugins linked statically, so their allocations count).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator, which upholds the contract.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's guarantees for `layout`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` (every allocation here does) with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: as `dealloc`, and the caller's guarantees for `new`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// The only test in this binary, so no other thread allocates while it counts.
#[test]
fn running_a_window_allocates_nothing() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut dirs = common::fixtures();
    for v in ["standard", "dilated", "depthwise", "grouped", "residual"] {
        dirs.push(examples.join("bench").join(v));
        dirs.push(examples.join("models").join(v));
    }
    for dir in dirs {
        let (_, mut graph) = common::build(&dir.join("reflex.toml")).unwrap();
        let (inputs, _) = common::io(&dir);
        graph.run(&inputs[0]).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..10 {
            for x in &inputs {
                graph.run(x).unwrap();
            }
        }
        let n = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(n, 0, "{}: {n} allocations in 10 passes", dir.display());

        // Streaming: overlapping windows cut from the fixture's windows laid end to end.
        let (c, len) = match graph.layers().first().map(|l| l.input) {
            Some(reflex_plugin_sdk::Shape::Seq { channels, length }) => (channels, length),
            _ => continue,
        };
        let hop = 1.max(len / 8);
        graph.set_hop(hop);
        let t = len * inputs.len();
        let signal: Vec<f32> = (0..c)
            .flat_map(|ch| inputs.iter().flat_map(move |x| x[ch * len..(ch + 1) * len].iter().copied()))
            .collect();
        let windows: Vec<Vec<f32>> = (0..=(t - len) / hop)
            .map(|i| signal.chunks_exact(t).flat_map(|row| &row[i * hop..i * hop + len]).copied().collect())
            .collect();
        graph.run(&windows[0]).unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for w in &windows[1..] {
            graph.run(w).unwrap();
        }
        let n = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(n, 0, "{}: {n} allocations streaming at hop {hop}", dir.display());
        assert!(
            windows.len() < 3
                || graph.streamed()
                || graph.layers().iter().all(|l| !matches!(l.stream, reflex_graph::Stream::Partial { .. })),
            "{}: never streamed",
            dir.display()
        );
    }
}
