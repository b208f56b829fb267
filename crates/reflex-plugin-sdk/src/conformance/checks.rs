//! The checks, on one loaded layer.

use super::driver::{Bufs, Driver, Failure};
use super::{allocations_during, first_difference, rows, Case, Ctx, Report, Rng, POISON};
use crate::abi::{PluginDescriptor, STATUS_MISUSE, STATUS_PANIC};
use crate::{Shape, TensorSpec};
use std::ops::Range;

/// Which input positions an output position reads (from `stream` and the layer's info).
#[derive(Clone, Copy, Debug)]
struct Field {
    pad_left: usize,
    span: usize,
    stride: usize,
}

impl Field {
    /// Input positions output positions `r` read, clipped to `0..len`.
    fn inputs(&self, r: &Range<usize>, len: usize) -> Range<usize> {
        if r.is_empty() {
            return 0..0;
        }
        let lo = (r.start * self.stride).saturating_sub(self.pad_left).min(len);
        let hi = ((r.end - 1) * self.stride + self.span).saturating_sub(self.pad_left).clamp(lo, len);
        lo..hi
    }

    /// Output positions of a window the previous window, `hop` samples earlier, already holds
    /// `hop / stride` positions further on: those whose inputs lie inside both windows.
    fn kept(&self, len: usize, hop: usize, n: usize) -> Range<usize> {
        let first = self.pad_left.div_ceil(self.stride).min(n);
        let Some(room) = (len + self.pad_left).checked_sub(self.span + hop) else { return first..first };
        let end = (room / self.stride + 1).min(n.saturating_sub(hop / self.stride));
        first..end.max(first)
    }
}

/// A configured, loaded instance and what the host learnt about it.
pub(super) struct Loaded<'c> {
    driver: Driver,
    case: &'c Case,
    output: Shape,
    scratch_len: usize,
    field: Option<Field>,
}

impl<'c> Loaded<'c> {
    /// Creates, configures and loads the case's layer; checks that a window before `load` is
    /// refused as misuse.
    pub(super) fn new(d: &'static PluginDescriptor, case: &'c Case, rng: &mut Rng) -> Result<Self, Failure> {
        let mut driver = Driver::create(d, &case.keys)?;
        let info = driver.configure(case.input)?;
        let output = Shape::from_abi(&info.output).ok_or_else(|| misuse("configure reported a bad output shape"))?;
        let mut l = Loaded { driver, case, output, scratch_len: info.scratch_len as usize, field: None };
        let x = vec![0.0; case.input.len()];
        if l.forward(&x, &mut vec![0.0; output.len()]).map_err(|f| f.status) != Err(STATUS_MISUSE) {
            return Err(misuse("a window before `load` was not refused as misuse"));
        }
        let specs = l.driver.tensor_specs(info.tensor_count)?;
        let tensors = specs.iter().map(|s| weights(case, s, rng)).collect::<Result<Vec<_>, _>>()?;
        l.driver.load(&tensors)?;
        let streams = l.driver.stream()?;
        l.field = match (streams, case.input, output) {
            (Some(pad_left), Shape::Seq { .. }, Shape::Seq { .. }) if info.rf_span > 0 => {
                Some(Field { pad_left, span: info.rf_span as usize, stride: info.rf_stride.max(1) as usize })
            }
            (Some(_), Shape::Seq { .. }, Shape::Seq { .. }) => {
                return Err(misuse("`stream` says supported but the layer reports no receptive field (rf_span 0)"))
            }
            _ => None,
        };
        Ok(l)
    }

    /// Every check on this case.
    pub(super) fn check(&mut self, ctx: &Ctx<'_>, rng: &mut Rng, streaming: bool, report: &mut Report) {
        if streaming && self.field.is_none() {
            ctx.fail("the harness expects streaming, but `stream` says this layer cannot compute ranges");
        }
        let inputs: Vec<Vec<f32>> = (0..3).map(|_| rng.values(self.case.input.len(), -1.0, 1.0)).collect();
        let outputs: Vec<Vec<f32>> = inputs.iter().map(|x| self.window(ctx, x)).collect();
        report.windows += inputs.len();
        self.check_misuse(ctx);
        if let Some(field) = self.field {
            for (x, y) in inputs.iter().zip(&outputs).take(2) {
                report.ranges += self.check_ranges(ctx, field, rng, x, y);
            }
            report.streamed += self.check_streaming(ctx, field, rng);
        }
        if let Some(bad) = &self.case.panics_on {
            self.check_panic(ctx, bad, &inputs[0], &outputs[0]);
            report.panics += 1;
        }
    }

    fn forward(&mut self, x: &[f32], y: &mut [f32]) -> Result<(), Failure> {
        let mut scratch = vec![POISON; self.scratch_len];
        self.driver.forward(Bufs { input: x, output: y, scratch: &mut scratch })
    }

    /// `forward` must not allocate (the buffers are made outside the count).
    fn counted_forward(&mut self, ctx: &Ctx<'_>, x: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        let (r, n) = allocations_during(|| self.driver.forward(Bufs { input: x, output: y, scratch }));
        r.unwrap_or_else(|f| ctx.fail(format_args!("forward failed: {f}")));
        if n > 0 {
            ctx.fail(format_args!("forward allocated {n} time(s); it must not allocate once loaded"));
        }
    }

    /// `forward_range` must not allocate either.
    fn counted_range(&mut self, ctx: &Ctx<'_>, x: &[f32], y: &mut [f32], r: Range<usize>) {
        let mut scratch = vec![POISON; self.scratch_len];
        let b = Bufs { input: x, output: y, scratch: &mut scratch };
        let (result, n) = allocations_during(|| self.driver.forward_range(b, r.start, r.end));
        result.unwrap_or_else(|f| ctx.fail(format_args!("forward_range({r:?}) failed: {f}")));
        if n > 0 {
            ctx.fail(format_args!("forward_range({r:?}) allocated {n} time(s); it must not allocate"));
        }
    }

    /// One window, twice: over poisoned and over zeroed output and scratch; the bits must agree.
    fn window(&mut self, ctx: &Ctx<'_>, x: &[f32]) -> Vec<f32> {
        let (out, sc) = (self.output.len(), self.scratch_len);
        let (mut y, mut s) = (vec![POISON; out], vec![POISON; sc]);
        self.counted_forward(ctx, x, &mut y, &mut s);
        let (mut y0, mut s0) = (vec![0.0; out], vec![0.0; sc]);
        self.counted_forward(ctx, x, &mut y0, &mut s0);
        if let Some(i) = first_difference(&y, &y0) {
            ctx.fail(format_args!(
                "forward's output depends on what its output and scratch buffers held before: at {i}, {} over \
                 poisoned buffers, {} over zeroed ones (an output left unwritten, or scratch read before it is \
                 written)",
                y[i], y0[i]
            ));
        }
        y
    }

    /// The host's mistakes are reported as misuse, never acted on.
    fn check_misuse(&mut self, ctx: &Ctx<'_>) {
        let x = vec![0.0; self.case.input.len() + 1];
        if self.forward(&x, &mut vec![0.0; self.output.len()]).map_err(|f| f.status) != Err(STATUS_MISUSE) {
            ctx.fail("a window of the wrong size was not refused as misuse");
        }
        if self.field.is_some() {
            let (mut y, mut s) = (vec![0.0; self.output.len()], vec![0.0; self.scratch_len]);
            let n = rows(self.output).1;
            let b = Bufs { input: &x[1..], output: &mut y, scratch: &mut s };
            if self.driver.forward_range(b, 0, n + 1).map_err(|f| f.status) != Err(STATUS_MISUSE) {
                ctx.fail("a range beyond the output was not refused as misuse");
            }
        }
    }

    /// Every range (or many) against `forward`'s output `want` for input `x`. Returns how many.
    fn check_ranges(&mut self, ctx: &Ctx<'_>, field: Field, rng: &mut Rng, x: &[f32], want: &[f32]) -> usize {
        let n = rows(self.output).1;
        let ranges = ranges(n, rng);
        for r in &ranges {
            // Inputs outside the range's field hold something else: a streaming host's buffer
            // holds stale samples there.
            let other = self.outside_field(field, r, x, rng);
            let mut y = vec![POISON; want.len()];
            self.counted_range(ctx, &other, &mut y, r.clone());
            if let Some(i) = first_difference(&y, &expected_range(want, n, r)) {
                self.explain_range(ctx, x, want, r, i, y[i]);
            }
        }
        ranges.len()
    }

    /// `x` with every position its field does not cover replaced by other values.
    fn outside_field(&self, field: Field, r: &Range<usize>, x: &[f32], rng: &mut Rng) -> Vec<f32> {
        let (_, len) = rows(self.case.input);
        let seen = field.inputs(r, len);
        let mut other = x.to_vec();
        for row in other.chunks_exact_mut(len.max(1)) {
            for (t, v) in row.iter_mut().enumerate() {
                if !seen.contains(&t) {
                    *v = rng.uniform(-4.0, 4.0);
                }
            }
        }
        other
    }

    /// Fails saying why `forward_range(r)` differs at `i`: outside the range, from `forward`, or
    /// only when inputs outside its field change.
    fn explain_range(&mut self, ctx: &Ctx<'_>, x: &[f32], want: &[f32], r: &Range<usize>, i: usize, got: f32) -> ! {
        let n = rows(self.output).1;
        let (ch, j) = (i / n, i % n);
        if !r.contains(&j) {
            ctx.fail(format_args!("forward_range({r:?}) changed position {j} of channel {ch}, outside the range"));
        }
        let mut y = vec![POISON; want.len()];
        self.counted_range(ctx, x, &mut y, r.clone());
        if first_difference(&y, &expected_range(want, n, r)).is_none() {
            ctx.fail(format_args!(
                "forward_range({r:?}) reads inputs outside the receptive field it declares (rf_span, rf_stride, \
                 pad_left): position {j} of channel {ch} changes when they do"
            ));
        }
        ctx.fail(format_args!(
            "forward_range({r:?}) differs from forward at position {j} of channel {ch}: {got} ({:#010x}), forward \
             gives {} ({:#010x})",
            got.to_bits(),
            want[i],
            want[i].to_bits()
        ))
    }

    /// Windows cut from one signal at a few hops, computed as the daemon streams them. Returns
    /// how many windows were streamed.
    fn check_streaming(&mut self, ctx: &Ctx<'_>, field: Field, rng: &mut Rng) -> usize {
        let (_, len) = rows(self.case.input);
        let mut hops = vec![field.stride, field.stride * (len / 3 / field.stride).max(1), field.stride * 2];
        hops.retain(|&h| h <= len);
        hops.dedup();
        hops.iter().map(|&hop| self.stream_at(ctx, field, hop, rng)).sum()
    }

    fn stream_at(&mut self, ctx: &Ctx<'_>, field: Field, hop: usize, rng: &mut Rng) -> usize {
        const WINDOWS: usize = 5;
        let (c, len) = rows(self.case.input);
        let (_, n) = rows(self.output);
        let total = len + WINDOWS * hop;
        let signal = rng.values(c * total, -1.0, 1.0);
        let cut = |w: usize| -> Vec<f32> {
            (0..c).flat_map(|ch| signal[ch * total + w * hop..][..len].iter().copied()).collect()
        };
        let mut prev = self.window(ctx, &cut(0));
        let (kept, shift) = (field.kept(len, hop, n), hop / field.stride);
        for w in 1..=WINDOWS {
            let x = cut(w);
            let mut y = vec![POISON; prev.len()];
            // An empty `kept` may start past `n - shift`: nothing to copy then.
            if !kept.is_empty() {
                for (row, old) in y.chunks_exact_mut(n).zip(prev.chunks_exact(n)) {
                    row[kept.clone()].copy_from_slice(&old[kept.start + shift..kept.end + shift]);
                }
            }
            self.counted_range(ctx, &x, &mut y, 0..kept.start);
            self.counted_range(ctx, &x, &mut y, kept.end..n);
            let want = self.window(ctx, &x);
            if let Some(i) = first_difference(&y, &want) {
                ctx.fail(format_args!(
                    "streaming at hop {hop}, window {w} (positions {kept:?} kept, the rest recomputed): position {} \
                     of channel {} is {}, the whole window gives {}",
                    i % n,
                    i / n,
                    y[i],
                    want[i]
                ));
            }
            prev = y;
        }
        WINDOWS
    }

    /// A declared panic comes back as `STATUS_PANIC`, and the next window is right.
    fn check_panic(&mut self, ctx: &Ctx<'_>, bad: &[f32], x: &[f32], want: &[f32]) {
        if bad.len() != self.case.input.len() {
            ctx.fail(format_args!("panics_on: {} values, the input has {}", bad.len(), self.case.input.len()));
        }
        match self.forward(bad, &mut vec![0.0; want.len()]) {
            Err(Failure { status: STATUS_PANIC, message }) if message.contains("panicked") => {}
            Err(f) => ctx.fail(format_args!("declared to panic, forward returned {f} instead of STATUS_PANIC")),
            Ok(()) => ctx.fail("declared to panic on an input, forward returned normally"),
        }
        let mut y = vec![0.0; want.len()];
        self.forward(x, &mut y).unwrap_or_else(|f| ctx.fail(format_args!("after a contained panic: {f}")));
        if first_difference(&y, want).is_some() {
            ctx.fail("after a contained panic, the same window gives another output");
        }
    }
}

fn misuse(message: &str) -> Failure {
    Failure { status: STATUS_MISUSE, message: message.into() }
}

/// The case's weights for one tensor, or random ones (BatchNorm variances positive).
fn weights(case: &Case, spec: &TensorSpec, rng: &mut Rng) -> Result<Vec<f32>, Failure> {
    let w = match &case.weights {
        Some(f) => f(spec),
        None if spec.name.ends_with("running_var") => rng.values(spec.len(), 0.5, 1.5),
        None => rng.values(spec.len(), -0.5, 0.5),
    };
    if w.len() != spec.len() {
        return Err(misuse(&format!(
            "the case's weights for `{}` have {} values, not {}",
            spec.name,
            w.len(),
            spec.len()
        )));
    }
    Ok(w)
}

/// What the output holds after `forward_range(r)` over a poisoned buffer: `want` inside the
/// range, poison outside.
fn expected_range(want: &[f32], n: usize, r: &Range<usize>) -> Vec<f32> {
    let mut e = vec![POISON; want.len()];
    for (e, w) in e.chunks_exact_mut(n).zip(want.chunks_exact(n)) {
        e[r.clone()].copy_from_slice(&w[r.clone()]);
    }
    e
}

/// Every `start..end` over a short output; over a longer one, every start with a few ends,
/// plus random ranges.
fn ranges(n: usize, rng: &mut Rng) -> Vec<Range<usize>> {
    if n <= 24 {
        return (0..=n).flat_map(|a| (a..=n).map(move |b| a..b)).collect();
    }
    let mut v: Vec<Range<usize>> = (0..=n).flat_map(|a| [a..a, a..(a + 1).min(n), a..n]).collect();
    v.extend((0..64).map(|_| {
        let a = rng.below(n + 1);
        a..a + rng.below(n - a + 1)
    }));
    v
}
