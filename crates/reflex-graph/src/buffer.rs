//! Buffer planning: one buffer per value (the input window and every layer's output), each
//! starting on a cache line, with room for streamed values to slide.

/// One `[C, n]` value (a layer's output), row-major, at `base` in its buffer.
///
/// A streamed layer moves its previous output `shift` positions back before recomputing the
/// edges. Moving `base` forward by `shift` does that for every row at once: position `j` of
/// row `c` then reads what was position `j + shift`, and the last `shift` positions of a row
/// (recomputed anyway) read the next row's first ones. So the buffer of a streamed value has
/// room for `SLIDES` slides, and is copied back to its start only when `base` reaches its end:
/// a copy of the kept values every `SLIDES` windows, not every window.
pub(crate) struct Value {
    buf: Vec<f32>,
    /// Where the value starts when it has not slid: a cache line.
    start: usize,
    base: usize,
    pub len: usize,
}

/// Windows between two copies of a streamed value back to the start of its buffer. (The
/// tests run more windows than this, so that the copy is exercised.)
const SLIDES: usize = 64;

/// f32 values per 64-byte cache line.
const LINE: usize = 16;

/// A zeroed buffer with room for `len` values from a cache line on, and where that is. The
/// kernels' 512-bit stores of whole rows then do not straddle two lines (each would cost two).
pub(crate) fn aligned(len: usize) -> (Vec<f32>, usize) {
    let buf = vec![0.0f32; len + LINE];
    let at = buf.as_ptr().align_offset(64).min(LINE);
    (buf, at)
}

impl Value {
    pub fn new(len: usize) -> Value {
        let (buf, start) = aligned(len);
        Value { buf, start, base: start, len }
    }

    pub fn get(&self) -> &[f32] {
        &self.buf[self.base..self.base + self.len]
    }

    pub fn get_mut(&mut self) -> &mut [f32] {
        &mut self.buf[self.base..self.base + self.len]
    }

    /// Makes room to [`slide`](Value::slide) by `shift` (allocates; before the loop).
    pub fn reserve_slides(&mut self, shift: usize) {
        let room = shift.saturating_mul(SLIDES).clamp(shift, self.len.max(shift));
        let (buf, start) = aligned(self.len + room);
        *self = Value { buf, start, base: start, len: self.len };
    }

    /// Position `j` of every row takes the value of position `j + shift`, for
    /// `j < n - shift`; the last `shift` positions of each row are left to be recomputed.
    pub fn slide(&mut self, shift: usize) {
        let base = self.base + shift;
        if base + self.len <= self.buf.len() {
            self.base = base;
        } else {
            self.buf.copy_within(base..self.base + self.len, self.start);
            self.base = self.start;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sliding a `[3, 10]` value by 3 positions, window after window, far past the point where
    /// it is copied back to the start of its buffer: every kept position holds what the
    /// previous window held 3 positions on, and the value stays on a cache line when the
    /// slides are whole lines.
    #[test]
    fn a_value_slides_by_the_shift_and_is_copied_back_when_full() {
        let (rows, n, shift) = (3, 10, 3);
        // Row r at absolute time t.
        let at = |r: usize, t: usize| (r * 100_000 + t) as f32;
        let mut v = Value::new(rows * n);
        v.reserve_slides(shift);
        for (i, x) in v.get_mut().iter_mut().enumerate() {
            *x = at(i / n, i % n);
        }
        for w in 1..5 * SLIDES {
            v.slide(shift);
            let x = v.get_mut();
            for r in 0..rows {
                for j in 0..n - shift {
                    assert_eq!(x[r * n + j], at(r, w * shift + j), "window {w} row {r} position {j}");
                }
                // What the layer recomputes: the newest positions.
                for j in n - shift..n {
                    x[r * n + j] = at(r, w * shift + j);
                }
            }
        }
        let mut lines = Value::new(4 * 64);
        lines.reserve_slides(16);
        for _ in 0..3 * SLIDES {
            lines.slide(16);
            assert_eq!(lines.get().as_ptr() as usize % 64, 0);
        }
    }
}
