//! The streaming planner: for windows that follow each other by a hop, which of each layer's
//! output positions carry over from the previous window. It runs once, on a built graph,
//! from what each layer says it reads for one output position (its [`ReadField`]); the forward
//! pass then only follows the plan.

use crate::graph::{seq_len, Graph, Node};
use reflex_plugin_sdk::Shape;
use std::fmt;
use std::ops::Range;

/// How a layer runs when consecutive windows overlap (streaming inference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// No hop set, or windows that do not overlap: every window is computed whole.
    Off,
    /// Keeps the previous window's output, shifted, and recomputes `recomputed` of its
    /// `length` positions per window: the new positions and those near the padded edges.
    Partial {
        /// Positions computed per window.
        recomputed: usize,
        /// Positions of the output.
        length: usize,
    },
    /// Computes its whole output for every window, for the reason given.
    Whole(WhyWhole),
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Off => f.write_str("-"),
            Stream::Partial { recomputed, length } => write!(f, "{recomputed} of {length}"),
            Stream::Whole(why) => write!(f, "all ({why})"),
        }
    }
}

/// What a layer reads for one output position: output `j` reads positions
/// `j*stride - pad_left ..+ span` of every input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadField {
    pub pad_left: usize,
    pub span: usize,
    pub stride: usize,
}

/// Streaming plan of one value: position `j` of a window equals position `j + shift` of the
/// previous window's for `j` in `keep`; the rest is recomputed.
#[derive(Clone, Debug)]
pub(crate) struct Keep {
    pub shift: usize,
    pub keep: Range<usize>,
}

impl Graph {
    /// Streaming inference for windows that start `hop` samples apart (`window.hop`): when a
    /// window is the previous one shifted by `hop` samples (checked on its values, so a
    /// dropped window or a gap simply runs whole), each layer keeps the part of its previous
    /// output that cannot have changed and recomputes only the rest. Results are those of
    /// whole-window runs. Sets [`LayerSummary::stream`](crate::LayerSummary::stream).
    /// Allocates; call it before the loop.
    pub fn set_hop(&mut self, hop: usize) {
        // Per value: how far it shifts between windows, and which positions carry over.
        let mut state: Vec<Option<Keep>> = Vec::with_capacity(self.values.len());
        state.push(match self.input {
            Shape::Seq { length, .. } if hop > 0 && hop < length => Some(Keep { shift: hop, keep: 0..length - hop }),
            _ => None,
        });
        self.hop = if state[0].is_some() { hop } else { 0 };
        self.primed = false;
        for (i, node) in self.nodes.iter().enumerate() {
            let (keep, stream) = if self.hop == 0 {
                (None, Stream::Off)
            } else {
                match plan_node(node, &state) {
                    Ok(k) => {
                        let length = seq_len(node.output);
                        (Some(k.clone()), Stream::Partial { recomputed: length - k.keep.len(), length })
                    }
                    Err(why) => (None, Stream::Whole(why)),
                }
            };
            self.summary[i].stream = stream;
            if let Some(k) = &keep {
                self.values[i + 1].reserve_slides(k.shift);
            }
            self.plan[i] = keep.clone();
            state.push(keep);
        }
        if self.plan.iter().all(Option::is_none) {
            // Nothing to reuse: no need to compare windows.
            self.hop = 0;
        }
    }
}

/// Why a layer computes its whole output for every window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhyWhole {
    /// Its output is 1-D.
    NoTimeAxis,
    /// An input changes whole from window to window.
    InputWhole,
    /// The layer cannot compute part of its output.
    NoRange,
    /// Its inputs shift by different amounts between windows.
    InputsDiffer,
    /// Its stride does not divide its input's shift.
    Stride {
        /// The layer's stride.
        stride: usize,
        /// Positions its input shifts by.
        shift: usize,
    },
    /// Every output position sees a new or padded input position.
    NothingKept,
}

impl fmt::Display for WhyWhole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhyWhole::NoTimeAxis => f.write_str("no time axis"),
            WhyWhole::InputWhole => f.write_str("its input is computed whole"),
            WhyWhole::NoRange => f.write_str("the layer cannot compute part of its output"),
            WhyWhole::InputsDiffer => f.write_str("its inputs move by different amounts"),
            WhyWhole::Stride { stride, shift } => write!(f, "its stride {stride} does not divide the shift of {shift}"),
            WhyWhole::NothingKept => f.write_str("no position carries over"),
        }
    }
}

/// The streaming plan of one node, given the plans of the values before it.
fn plan_node(node: &Node, state: &[Option<Keep>]) -> Result<Keep, WhyWhole> {
    let Shape::Seq { length, .. } = node.output else {
        return Err(WhyWhole::NoTimeAxis);
    };
    let inputs: Vec<&Keep> = node.inputs.iter().filter_map(|&i| state[i].as_ref()).collect();
    if inputs.len() < node.inputs.len() {
        return Err(WhyWhole::InputWhole);
    }
    let w = node.window.ok_or(WhyWhole::NoRange)?;
    let shift = inputs[0].shift;
    if inputs.iter().any(|k| k.shift != shift) {
        return Err(WhyWhole::InputsDiffer);
    }
    if !shift.is_multiple_of(w.stride) {
        return Err(WhyWhole::Stride { stride: w.stride, shift });
    }
    // Positions every input keeps.
    let start = inputs.iter().map(|k| k.keep.start).max().unwrap_or(0);
    let end = inputs.iter().map(|k| k.keep.end).min().unwrap_or(0);
    let shift = shift / w.stride;
    // Output j reads inputs [j*stride - pad_left, j*stride - pad_left + span); it is
    // unchanged when they all are (none of them padding), and then equals the previous
    // output at j + shift.
    // A plugin reports pad_left and span: saturate rather than trust them not to overflow.
    let first = start.saturating_add(w.pad_left).div_ceil(w.stride);
    let end = match end.saturating_add(w.pad_left).checked_sub(w.span) {
        Some(last) => last / w.stride + 1,
        None => 0,
    };
    let end = end.min(length.saturating_sub(shift));
    let keep = first.min(end)..end;
    if keep.is_empty() {
        return Err(WhyWhole::NothingKept);
    }
    Ok(Keep { shift, keep })
}
