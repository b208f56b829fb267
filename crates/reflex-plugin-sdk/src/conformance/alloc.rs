//! Counting heap allocations made by one thread while a closure runs.
//!
//! `#[global_allocator]` can only be set by the final binary, so the harness cannot install
//! one itself: a plugin's test binary does, with [`count_allocations!`](crate::count_allocations).
//! The counters are per thread, so tests running in parallel do not see each other's
//! allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` and without Drop: reading them inside the allocator never allocates or registers
    // a destructor.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

/// A [`GlobalAlloc`] that forwards to `A` and counts allocations (`alloc`, `alloc_zeroed`,
/// `realloc`) of the thread that is inside [`allocations_during`].
#[derive(Debug, Default)]
pub struct CountingAlloc<A = System>(pub A);

fn count() {
    // `try_with`: during thread teardown the counters may be gone; that thread is not measured.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `A`'s, with the caller's arguments unchanged, so `A`'s
// guarantees hold; counting touches only thread-local cells and neither allocates nor panics.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is `A::alloc`'s.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as `alloc`.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `A` (the caller's contract).
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as `dealloc`; `new_size` is checked by the caller.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the number of heap allocations this thread made
/// meanwhile. Always 0 unless the binary's global allocator is a [`CountingAlloc`].
pub fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, COUNT.with(Cell::get))
}

/// Whether the global allocator counts: a check that an allocation-free result means something.
pub fn counting_installed() -> bool {
    let ((), n) = allocations_during(|| drop(std::hint::black_box(Box::new(0u64))));
    n > 0
}

/// Installs [`CountingAlloc`] as the test binary's global allocator, so that the conformance
/// harness can check that `forward` and `forward_range` allocate nothing. Once, at the top
/// level of the test file.
#[macro_export]
macro_rules! count_allocations {
    () => {
        #[global_allocator]
        static REFLEX_CONFORMANCE_ALLOCATOR: $crate::conformance::CountingAlloc =
            $crate::conformance::CountingAlloc(::std::alloc::System);
    };
}
