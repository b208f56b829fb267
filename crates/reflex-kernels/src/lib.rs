//! Numeric kernels of Reflex: PyTorch-exact 1-D convolution, activations,
//! batch norm, pooling, linear, softmax and channel shuffle on `[C, L]`
//! row-major f32 data (PyTorch `NCL` with `N = 1`).
//!
//! This crate never sees a graph, a config or a plugin. Everything that
//! depends on the shapes (packed weights, offset tables) is prepared when a
//! [`Conv1d`] is built; the `run` functions and the free kernels never
//! allocate.
//!
//! Three layers, each importing only the ones below it (as tract's `linalg`):
//!
//! * `bodies` — the hot loops: plain functions per instruction set (scalar
//!   reference, portable auto-vectorised — NEON on aarch64 —, AVX2+FMA and
//!   AVX-512 on x86-64) and the pure data they share;
//! * `registry` — one [`KernelSet`] per instruction set, the [`variants`] this
//!   CPU runs and the one [`kernels`] picks once per process (set
//!   `REFLEX_KERNELS=scalar`, or `portable`, `avx2+fma`, `avx512`, to force
//!   one);
//! * the public API — [`Conv1d`], [`Activation`], the free functions — on a
//!   kernel set. One conformance suite runs against every [`variants`] entry.
//!
//! [`Conv1d::run_range`] computes any range of output positions, bit for bit
//! as the whole run computes them: streaming inference recomputes only the
//! edges of a window that moved on by a few samples.
//!
//! ```
//! use reflex_kernels::{Activation, Conv1d, ConvGeometry};
//!
//! // One input channel, one output channel, k = 3, PyTorch padding="same".
//! let geom = ConvGeometry {
//!     in_channels: 1, out_channels: 1, groups: 1, kernel_size: 3,
//!     stride: 1, dilation: 1, pad_left: 1, pad_right: 1, in_len: 4,
//! };
//! let conv = Conv1d::new(geom, &[1.0, 2.0, -1.0], Some(&[0.5])).unwrap();
//! let mut out = vec![0.0; conv.out_len()];
//! let mut scratch = vec![0.0; conv.scratch_len()];
//! conv.run(&[1.0, 2.0, 3.0, 4.0], &mut out, &mut scratch);
//! // out[j] = 0.5 + 1*x[j-1] + 2*x[j] - 1*x[j+1]
//! assert_eq!(out, [0.5, 2.5, 4.5, 11.5]);
//!
//! Activation::Relu.apply(&mut out);
//! assert_eq!(geom.macs(), 12);
//! ```

mod activation;
mod bodies;
mod conv;
mod ops;
mod registry;

#[cfg(test)]
mod conformance;

pub use activation::Activation;
pub use conv::{Conv1d, ConvError, ConvGeometry};
pub use ops::{
    add_activate, add_assign, avg_pool, batch_norm_scale_shift, channel_shuffle, channel_shuffle_range,
    fold_batch_norm, global_avg_pool, global_max_pool, linear, max_pool, scale_shift, softmax,
};
pub use registry::{kernel_set_by_name, kernels, variants, KernelSet};

#[cfg(test)]
mod layers {
    //! The layers stay a DAG: no source of a layer names a module above it.
    use std::path::Path;

    /// Code lines (not comments: doc links may point up) of every `.rs` file under `path`.
    fn code_lines(path: &Path, out: &mut Vec<(String, String)>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).expect("readable src") {
                code_lines(&entry.expect("a directory entry").path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(path).expect("readable source");
            let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            out.extend(code.map(|l| (path.display().to_string(), l.to_string())));
        }
    }

    fn assert_below(layer: &str, above: &[&str]) {
        let mut lines = Vec::new();
        code_lines(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(layer), &mut lines);
        assert!(!lines.is_empty(), "no source found for {layer}");
        for (file, line) in lines {
            for module in above {
                assert!(!line.contains(&format!("crate::{module}")), "{file} reaches up to {module}: {line}");
            }
            // The crate root re-exports the public API (`crate::Conv1d`, …).
            assert!(!line.contains("crate::{") && !line.contains("crate::*"), "{file}: {line}");
            assert!(!line.split("crate::").skip(1).any(|s| s.starts_with(char::is_uppercase)), "{file}: {line}");
        }
    }

    #[test]
    fn no_layer_imports_one_above_it() {
        assert_below("bodies", &["registry", "activation", "conv", "ops"]);
        assert_below("registry.rs", &["activation", "conv", "ops"]);
        assert_below("registry", &["activation", "conv", "ops"]);
    }
}
