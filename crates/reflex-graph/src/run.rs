//! The forward pass: one window through every layer in order, into buffers planned when the
//! graph was built, so nothing is allocated. A streamed layer slides its previous output and
//! recomputes only the positions its plan does not keep.

use crate::buffer::Value;
use crate::error::RunError;
use crate::graph::{seq_len, Graph, Node};
use crate::layer::Inputs;
use crate::plan::Keep;
use reflex_plugin_host::PluginError;
use std::time::{Duration, Instant};

impl Graph {
    /// Runs one window (`[C, L]` row-major) and returns the final layer's values.
    pub fn run(&mut self, window: &[f32]) -> Result<&[f32], RunError> {
        self.run_inner(window, None)
    }

    /// Like [`Graph::run`], adding each layer's time to `times` (one entry per layer).
    pub fn run_timed(&mut self, window: &[f32], times: &mut [Duration]) -> Result<&[f32], RunError> {
        self.run_inner(window, Some(times))
    }

    fn run_inner(&mut self, window: &[f32], mut times: Option<&mut [Duration]>) -> Result<&[f32], RunError> {
        let expected = self.values[0].len;
        if window.len() != expected {
            return Err(RunError::InputLength { expected, got: window.len() });
        }
        let streaming =
            self.primed && self.hop > 0 && follows(self.values[0].get(), window, seq_len(self.input), self.hop);
        // Set again only once every layer has succeeded.
        self.primed = false;
        self.streamed = streaming;
        self.values[0].get_mut().copy_from_slice(window);
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let start = times.is_some().then(Instant::now);
            let (done, rest) = self.values.split_at_mut(i + 1);
            let scratch = &mut self.scratch[self.scratch_at..self.scratch_at + node.scratch_len];
            let plan = self.plan[i].as_ref().filter(|_| streaming);
            step(node, plan, done, &mut rest[0], scratch)
                .map_err(|cause| RunError::Layer { layer: self.summary[i].name.clone(), cause })?;
            if let (Some(t), Some(start)) = (times.as_deref_mut(), start) {
                t[i] += start.elapsed();
            }
        }
        self.primed = true;
        Ok(self.values.last().map_or(&[][..], Value::get))
    }
}

/// One layer: its whole output, or, with a plan, the previous output slid by the plan's shift
/// and only the positions outside `keep` recomputed.
fn step(
    node: &mut Node,
    plan: Option<&Keep>,
    done: &[Value],
    out: &mut Value,
    scratch: &mut [f32],
) -> Result<(), PluginError> {
    let inputs = Inputs::new(done, &node.inputs);
    let Some(Keep { shift, keep }) = plan else {
        return node.layer.forward(inputs, out.get_mut(), scratch);
    };
    out.slide(*shift);
    let out = out.get_mut();
    for range in [0..keep.start, keep.end..seq_len(node.output)] {
        if !range.is_empty() {
            node.layer.forward_range(inputs, out, scratch, range)?;
        }
    }
    Ok(())
}

/// Whether `window` is `previous` moved `hop` samples on: every row's first `len - hop`
/// values are bit for bit the previous row's last ones.
fn follows(previous: &[f32], window: &[f32], len: usize, hop: usize) -> bool {
    len > hop
        && previous
            .chunks_exact(len)
            .zip(window.chunks_exact(len))
            .all(|(p, w)| p[hop..].iter().zip(&w[..len - hop]).all(|(a, b)| a.to_bits() == b.to_bits()))
}
