//! 1-D convolution (PyTorch `conv1d`, N = 1) over a zero-padded input.

use crate::activation::Activation;
use crate::bodies::{Act, Tile, MR, OC, SLACK};
use crate::registry::{kernels, KernelSet};
use std::ops::Range;

/// Geometry of one PyTorch `Conv1d` (N = 1, layout `[C, L]` row-major,
/// channels first). Padding is explicit per side, so PyTorch's
/// `padding="same"` with an even kernel and causal padding are both expressible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels (rows of the input).
    pub in_channels: usize,
    /// Output channels (rows of the output).
    pub out_channels: usize,
    /// Channel groups; each sees `in_channels / groups` inputs and makes
    /// `out_channels / groups` outputs (`in_channels` groups: depthwise).
    pub groups: usize,
    /// Taps of the kernel.
    pub kernel_size: usize,
    /// Input positions between two output positions.
    pub stride: usize,
    /// Input positions between two taps.
    pub dilation: usize,
    /// Zeros before the input.
    pub pad_left: usize,
    /// Zeros after the input.
    pub pad_right: usize,
    /// Input positions (columns of the input).
    pub in_len: usize,
}

impl ConvGeometry {
    /// `floor((in_len + pad_left + pad_right - dilation*(k-1) - 1) / stride) + 1`,
    /// or `None` when the padded input is shorter than the dilated kernel, a
    /// field other than the paddings is zero, or the channel counts are not
    /// divisible by `groups`.
    pub fn out_len(&self) -> Option<usize> {
        let g = self;
        if [g.in_channels, g.out_channels, g.groups, g.kernel_size, g.stride, g.dilation, g.in_len].contains(&0)
            || !g.in_channels.is_multiple_of(g.groups)
            || !g.out_channels.is_multiple_of(g.groups)
        {
            return None;
        }
        let padded = g.in_len.checked_add(g.pad_left)?.checked_add(g.pad_right)?;
        let span = g.dilation.checked_mul(g.kernel_size - 1)?.checked_add(1)?;
        let room = padded.checked_sub(span)?;
        Some(room / g.stride + 1)
    }

    /// `out_channels * out_len * (in_channels / groups) * kernel_size`: taps on
    /// padding included, 0 for an invalid geometry.
    pub fn macs(&self) -> u64 {
        match self.out_len() {
            Some(l) => [self.out_channels, l, self.in_channels / self.groups, self.kernel_size]
                .iter()
                .fold(1u64, |acc, &v| acc.saturating_mul(v as u64)),
            None => 0,
        }
    }

    /// The padded-input columns output positions `range` read (column `q` holds input
    /// position `q - pad_left`). Empty for an empty range. For a valid geometry.
    pub fn padded_columns(&self, range: &Range<usize>) -> Range<usize> {
        if range.is_empty() {
            return 0..0;
        }
        let span = self.dilation * (self.kernel_size - 1) + 1;
        range.start * self.stride..(range.end - 1) * self.stride + span
    }

    /// Length of the zero-padded input.
    fn padded_len(&self) -> usize {
        self.in_len + self.pad_left + self.pad_right
    }

    /// f32 elements of scratch a [`Conv1d`] of this geometry needs: known before its
    /// weights are, so a graph can plan its memory first. `None` if it overflows.
    pub fn scratch_len(&self) -> Option<usize> {
        let s = self.stride.max(1);
        self.padded_len().div_ceil(s).checked_mul(s)?.checked_mul(self.in_channels)?.checked_add(SLACK)
    }
}

#[derive(Clone, Copy, Debug)]
enum TileKind {
    /// Up to MR output channels at once (`rows` of them real).
    Panel { rows: usize },
    /// A single output channel: depthwise convolutions, and the last
    /// channel of a group whose size leaves a remainder of one.
    Row,
    /// Up to OC output channels at once, vectorised over the channels: for
    /// a few positions (the edges streaming recomputes), where a panel's
    /// position blocks would be mostly empty.
    Cols { rows: usize },
}

/// Where a convolution's weights come from while they are packed.
struct Layout<'a> {
    geom: &'a ConvGeometry,
    weight: &'a [f32],
    bias: Option<&'a [f32]>,
    steps: usize,
    chan_stride: usize,
}

impl Layout<'_> {
    /// Tiles of up to `max` output channels within each group, appended to `packed` (for each
    /// reduction step the tile's weights side by side, `width` of them, zeros past its real
    /// rows) and `biases`; `kind(rows)` says which kernel runs a tile and its width.
    fn pack(
        &self,
        packed: &mut Vec<f32>,
        biases: &mut Vec<f32>,
        max: usize,
        kind: impl Fn(usize) -> (TileKind, usize),
    ) -> Vec<TilePlan> {
        let g = self.geom;
        let (ipg, opg) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let mut tiles = Vec::new();
        for group in 0..g.groups {
            let mut o = group * opg;
            let end = (group + 1) * opg;
            while o < end {
                let rows = (end - o).min(max);
                let (kind, width) = kind(rows);
                tiles.push(TilePlan {
                    kind,
                    out_ch: o,
                    x_base: group * ipg * self.chan_stride,
                    w_base: packed.len(),
                    b_base: biases.len(),
                });
                for step in 0..self.steps {
                    packed.extend((0..width).map(|m| {
                        if m < rows {
                            self.weight[(o + m) * self.steps + step]
                        } else {
                            0.0
                        }
                    }));
                }
                biases.extend((0..width).map(|m| match self.bias {
                    Some(b) if m < rows => b[o + m],
                    _ => 0.0,
                }));
                o += rows;
            }
        }
        tiles
    }
}

#[derive(Clone, Copy, Debug)]
struct TilePlan {
    kind: TileKind,
    /// First output channel.
    out_ch: usize,
    /// Start of the group's input rows in scratch.
    x_base: usize,
    /// Start of the packed weights and of the (padded) biases.
    w_base: usize,
    b_base: usize,
}

/// A convolution with its weights packed for the kernels at construction.
///
/// `run` copies the input into scratch, zero-padded and, for a stride `s > 1`,
/// split into `s` phases (`phase[p][m] = xpad[p + s*m]`) so that every
/// kernel reads contiguous rows. Every output is then
/// `b[o] + sum_{c,t} W[o,c,t] * scratch[off(c,t) + j]`: a small GEMM over a
/// table of row offsets. Output channels are processed in panels of 4
/// (register-blocked over positions); depthwise convolutions and odd
/// single channels use a one-row kernel so that no work is wasted on padding
/// rows.
///
/// An activation set with [`with_activation`](Conv1d::with_activation), and the residual of
/// [`run_range_add_with`](Conv1d::run_range_add_with), are applied to each tile's rows right after its kernel ran,
/// while they are in L1, in one pass; the narrow-range kernel applies a piecewise-linear
/// activation itself as it scatters its values.
#[derive(Clone, Debug)]
pub struct Conv1d {
    geom: ConvGeometry,
    act: Activation,
    out_len: usize,
    ks: &'static KernelSet,
    /// Offset in a group's scratch of each reduction step `(c, t)` (c-major).
    offsets: Vec<usize>,
    packed: Vec<f32>,
    biases: Vec<f32>,
    tiles: Vec<TilePlan>,
    /// The same channels in `Cols` tiles; empty for depthwise convolutions.
    col_tiles: Vec<TilePlan>,
    /// Length of one phase row; `stride` phase rows per channel.
    phase_len: usize,
    scratch_len: usize,
    /// The prepared input would be the input itself (1×1, stride 1, no padding) and no block
    /// reads past a row (its length is a multiple of every block width): run in place.
    in_place: bool,
}

/// Why a [`Conv1d`] cannot be built from a geometry and its weights.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvError {
    /// No output position: the kernel is longer than the padded input, a size is zero, or the
    /// channels are not divisible by the groups.
    #[error(
        "invalid convolution geometry {0:?}: no output position (kernel longer than the padded input, a zero size, \
         or channels not divisible by groups)"
    )]
    Geometry(ConvGeometry),
    /// A size computed from the geometry overflows `usize`.
    #[error("convolution too large")]
    TooLarge,
    /// The weight slice does not hold `[out, in/groups, k]` elements.
    #[error("weight has {found} elements, expected {} = [out {out}, in/groups {in_per_group}, k {k}]", out * in_per_group * k)]
    Weight {
        /// Elements given.
        found: usize,
        /// Output channels.
        out: usize,
        /// Input channels per group.
        in_per_group: usize,
        /// Kernel size.
        k: usize,
    },
    /// The bias slice does not hold `out` elements.
    #[error("bias has {found} elements, expected out_channels = {out}")]
    Bias {
        /// Elements given.
        found: usize,
        /// Output channels.
        out: usize,
    },
}

impl Conv1d {
    /// `weight` in PyTorch layout `[out, in/groups, k]`, `bias` `[out]` or
    /// `None`. Fails if the geometry is invalid or the slice lengths do not
    /// match.
    pub fn new(geom: ConvGeometry, weight: &[f32], bias: Option<&[f32]>) -> Result<Conv1d, ConvError> {
        let out_len = geom.out_len().ok_or(ConvError::Geometry(geom))?;
        let ipg = geom.in_channels / geom.groups;
        let opg = geom.out_channels / geom.groups;
        let k = geom.kernel_size;
        let steps = ipg.checked_mul(k).ok_or(ConvError::TooLarge)?;
        let expect = geom.out_channels.checked_mul(steps).ok_or(ConvError::TooLarge)?;
        if weight.len() != expect {
            return Err(ConvError::Weight { found: weight.len(), out: geom.out_channels, in_per_group: ipg, k });
        }
        if let Some(b) = bias {
            if b.len() != geom.out_channels {
                return Err(ConvError::Bias { found: b.len(), out: geom.out_channels });
            }
        }
        let s = geom.stride;
        let phase_len = geom.padded_len().div_ceil(s);
        let chan_stride = phase_len.checked_mul(s).ok_or(ConvError::TooLarge)?;
        let scratch_len = geom.scratch_len().ok_or(ConvError::TooLarge)?;

        let mut offsets = Vec::with_capacity(steps);
        for c in 0..ipg {
            for t in 0..k {
                let tap = t * geom.dilation;
                offsets.push(c * chan_stride + (tap % s) * phase_len + tap / s);
            }
        }

        let mut packed = Vec::new();
        let mut biases = Vec::new();
        let layout = Layout { geom: &geom, weight, bias, steps, chan_stride };
        let tiles = layout.pack(&mut packed, &mut biases, MR, |rows| match rows {
            1 => (TileKind::Row, 1),
            rows => (TileKind::Panel { rows }, MR),
        });
        let col_tiles = if opg > 1 {
            layout.pack(&mut packed, &mut biases, OC, |rows| (TileKind::Cols { rows }, OC))
        } else {
            Vec::new()
        };

        let in_place = geom.kernel_size == 1
            && s == 1
            && geom.pad_left == 0
            && geom.pad_right == 0
            && geom.in_len.is_multiple_of(SLACK);
        Ok(Conv1d {
            geom,
            act: Activation::None,
            out_len,
            ks: kernels(),
            offsets,
            packed,
            biases,
            tiles,
            col_tiles,
            phase_len,
            scratch_len,
            in_place,
        })
    }

    /// Applies `act` to every output (after the residual of
    /// [`run_range_add_with`](Conv1d::run_range_add_with)).
    pub fn with_activation(mut self, act: Activation) -> Conv1d {
        self.act = act;
        self
    }

    /// The geometry it was built for.
    pub fn geometry(&self) -> &ConvGeometry {
        &self.geom
    }

    /// Output positions per channel.
    pub fn out_len(&self) -> usize {
        self.out_len
    }

    /// f32 elements of scratch `run` needs: the padded (phase-split) input
    /// plus slack for the over-reading vector tails.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// `input`: `[in_channels, in_len]`; `output`: `[out_channels, out_len]`,
    /// overwritten (bias included); `scratch`: at least `scratch_len()`.
    /// Never allocates.
    ///
    /// # Panics
    /// If a slice has the wrong length.
    pub fn run(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32]) {
        self.run_with(self.ks, input, output, scratch)
    }

    /// [`run`](Conv1d::run) with an explicit kernel set.
    pub fn run_with(&self, ks: &KernelSet, input: &[f32], output: &mut [f32], scratch: &mut [f32]) {
        self.run_range_add_with(ks, input, None, output, scratch, 0..self.out_len)
    }

    /// Output positions `range` of every output channel, reading only the input positions
    /// they see (`[start*stride - pad_left, (end-1)*stride - pad_left + span)`, clipped to
    /// the input); every other output position is left as it is. Each value is computed
    /// exactly as [`run`](Conv1d::run) computes it, so streaming inference can recompute the
    /// edges of a window and keep the rest. Never allocates.
    ///
    /// # Panics
    /// If a slice has the wrong length or `range` is not within `0..out_len`.
    pub fn run_range(&self, input: &[f32], output: &mut [f32], scratch: &mut [f32], range: Range<usize>) {
        self.run_range_add_with(self.ks, input, None, output, scratch, range)
    }

    /// Positions `range` of `activation(conv(input) + add)`, as
    /// [`run_range_add_with`](Conv1d::run_range_add_with) with this convolution's kernel set.
    pub fn run_range_add(
        &self,
        input: &[f32],
        add: Option<&[f32]>,
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) {
        self.run_range_add_with(self.ks, input, add, output, scratch, range)
    }

    /// [`run_range`](Conv1d::run_range) with an explicit kernel set.
    pub fn run_range_with(
        &self,
        ks: &KernelSet,
        input: &[f32],
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) {
        self.run_range_add_with(ks, input, None, output, scratch, range)
    }

    /// What every `run` function comes down to: positions `range` of
    /// `activation(conv(input) + add)` with kernel set `ks`, `add` shaped as `output` (a
    /// residual block's shortcut, added in the same pass as its last convolution).
    pub fn run_range_add_with(
        &self,
        ks: &KernelSet,
        input: &[f32],
        add: Option<&[f32]>,
        output: &mut [f32],
        scratch: &mut [f32],
        range: Range<usize>,
    ) {
        assert!(
            range.start <= range.end && range.end <= self.out_len,
            "conv1d range {range:?} beyond {}",
            self.out_len
        );
        if let Some(add) = add {
            assert_eq!(add.len(), output.len(), "conv1d residual length");
        }
        let scratch = self.check(input, output, scratch);
        if range.is_empty() {
            return;
        }
        if range.len() == self.out_len {
            if self.in_place {
                // Pointwise convolutions (depthwise-separable, bottleneck blocks) skip a copy
                // of their whole input.
                return self.compute(ks, input, add, output, range);
            }
            self.prepare_input(input, scratch);
        } else {
            self.prepare_columns(input, scratch, &range);
        }
        self.compute(ks, scratch, add, output, range);
    }

    fn check<'s>(&self, input: &[f32], output: &[f32], scratch: &'s mut [f32]) -> &'s mut [f32] {
        let g = &self.geom;
        assert_eq!(input.len(), g.in_channels * g.in_len, "conv1d input length");
        assert_eq!(output.len(), g.out_channels * self.out_len, "conv1d output length");
        assert!(scratch.len() >= self.scratch_len, "conv1d scratch too short");
        &mut scratch[..self.scratch_len]
    }

    /// Runs the tiles over output positions `range`, the input already prepared in scratch.
    fn compute(&self, ks: &KernelSet, scratch: &[f32], add: Option<&[f32]>, output: &mut [f32], range: Range<usize>) {
        let n = self.out_len;
        let width = range.len();
        let steps = self.offsets.len();
        let tiles = if width < ks.narrow && !self.col_tiles.is_empty() { &self.col_tiles } else { &self.tiles };
        // The cols kernel applies a piecewise-linear activation itself (when nothing is added
        // first); every other case is done below, per tile.
        let act = self.act.params();
        let cols_act = if add.is_none() && act.fuses() { act } else { Act::None };
        for tile in tiles {
            // Every offset is relative to the output position, so shifting the input rows by
            // `range.start` makes position `range.start` the kernel's position 0.
            let x = &scratch[tile.x_base + range.start..];
            let out = &mut output[tile.out_ch * n + range.start..];
            match tile.kind {
                TileKind::Panel { rows } => (ks.panel)(
                    &Tile {
                        x,
                        offs: &self.offsets,
                        w: &self.packed[tile.w_base..tile.w_base + steps * MR],
                        bias: &self.biases[tile.b_base..tile.b_base + MR],
                        act: Act::None,
                    },
                    out,
                    n,
                    rows,
                    width,
                ),
                TileKind::Row => (ks.row)(
                    &Tile {
                        x,
                        offs: &self.offsets,
                        w: &self.packed[tile.w_base..tile.w_base + steps],
                        bias: &self.biases[tile.b_base..tile.b_base + 1],
                        act: Act::None,
                    },
                    &mut out[..width],
                ),
                TileKind::Cols { rows } => (ks.cols)(
                    &Tile {
                        x,
                        offs: &self.offsets,
                        w: &self.packed[tile.w_base..tile.w_base + steps * OC],
                        bias: &self.biases[tile.b_base..tile.b_base + OC],
                        act: cols_act,
                    },
                    out,
                    n,
                    rows,
                    width,
                ),
            }
            let cols_did_it = matches!(tile.kind, TileKind::Cols { .. }) && cols_act == act;
            if add.is_none() && (cols_did_it || self.act == Activation::None) {
                continue;
            }
            // While the tile's rows are still in L1. (Not as the kernels store their blocks:
            // any work on a block there made LLVM keep the accumulators on the stack.)
            let rows = match tile.kind {
                TileKind::Panel { rows } | TileKind::Cols { rows } => rows,
                TileKind::Row => 1,
            };
            // A tile's rows are contiguous when the range is the whole row: one call for all.
            let (count, len) = if width == n { (1, rows * n) } else { (rows, width) };
            for m in tile.out_ch..tile.out_ch + count {
                let at = m * n + range.start..m * n + range.start + len;
                let row = &mut output[at.clone()];
                match add {
                    Some(add) => (ks.add)(row, &add[at], act),
                    None => self.act.apply_with(ks, row),
                }
            }
        }
    }

    /// Like [`prepare_input`](Self::prepare_input), but only the padded columns that output
    /// positions `range` read.
    fn prepare_columns(&self, input: &[f32], scratch: &mut [f32], range: &Range<usize>) {
        let g = &self.geom;
        let s = g.stride;
        let Range { start: first, end: last } = g.padded_columns(range);
        let chan_stride = self.phase_len * s;
        // Padded column q holds input position q - pad_left; the real ones are [lo, hi).
        let lo = first.max(g.pad_left).min(last);
        let hi = last.min(g.pad_left + g.in_len).max(lo);
        for (dst, src) in scratch.chunks_exact_mut(chan_stride).zip(input.chunks_exact(g.in_len)) {
            if s == 1 {
                dst[first..lo].fill(0.0);
                if lo < hi {
                    dst[lo..hi].copy_from_slice(&src[lo - g.pad_left..hi - g.pad_left]);
                }
                dst[hi..last].fill(0.0);
                continue;
            }
            for q in first..last {
                let v = match q.checked_sub(g.pad_left) {
                    Some(i) if i < g.in_len => src[i],
                    _ => 0.0,
                };
                dst[(q % s) * self.phase_len + q / s] = v;
            }
        }
    }

    /// Writes the zero-padded input, phase-split for strides > 1, and zeroes
    /// the slack (its values never reach an output, but stale NaNs would make
    /// debugging confusing).
    fn prepare_input(&self, input: &[f32], scratch: &mut [f32]) {
        let g = &self.geom;
        let s = g.stride;
        let chan_stride = self.phase_len * s;
        let (rows, slack) = scratch.split_at_mut(chan_stride * g.in_channels);
        slack.fill(0.0);
        for (dst, src) in rows.chunks_exact_mut(chan_stride).zip(input.chunks_exact(g.in_len)) {
            if s == 1 {
                let (left, rest) = dst.split_at_mut(g.pad_left);
                let (mid, right) = rest.split_at_mut(g.in_len);
                left.fill(0.0);
                mid.copy_from_slice(src);
                right.fill(0.0);
            } else {
                for (p, phase) in dst.chunks_exact_mut(self.phase_len).enumerate() {
                    for (m, v) in phase.iter_mut().enumerate() {
                        let i = p + s * m;
                        *v = match i.checked_sub(g.pad_left) {
                            Some(i) if i < g.in_len => src[i],
                            _ => 0.0,
                        };
                    }
                }
            }
        }
    }
}
