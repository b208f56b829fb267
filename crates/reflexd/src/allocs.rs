//! A process-wide allocation counter, so that the daemon can report what its steady state
//! allocates per window (the `stats` and `stopped` log lines, see [`crate::daemon`]).
//!
//! On Linux with glibc, `reflexd` defines `malloc`, `calloc`, `realloc` and the aligned
//! variants itself — one relaxed atomic increment, then glibc's own implementation
//! (`__libc_malloc`, …) — so every allocation in the process is counted: Rust code in this
//! binary (whose global allocator is the system one), the plugin libraries loaded with `dlopen`
//! (each `cdylib` has its own Rust standard library, which calls `malloc` too) and C code alike.
//! glibc documents this replacement by symbol interposition; `free` stays glibc's, which owns
//! every block. Elsewhere a counting `#[global_allocator]` counts the allocations of Rust code
//! in this binary only.
//!
//! A steady state that allocates nothing never touches the counter, so counting costs nothing
//! there; elsewhere it costs one uncontended atomic add per allocation.
//!
//! One exception: the threads of the live view (`[live]`) call [`count_apart`] first. The
//! Foxglove SDK allocates for every message it sends a viewer; those threads only take
//! entries from a queue the hot path fills without allocating, so what they allocate says
//! nothing about the hot path and is counted apart, in [`apart`].

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static APART: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations are counted apart. A constant-initialised `Cell` of a
    /// type without drop: a plain thread-local load, which never allocates itself (this runs
    /// inside `malloc`).
    static COUNTED_APART: Cell<bool> = const { Cell::new(false) };
}

/// Allocations and reallocations so far, by every thread of the process but the live view's.
pub fn count() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Allocations so far by the live view's threads.
pub fn apart() -> u64 {
    APART.load(Ordering::Relaxed)
}

/// Counts the calling thread's allocations from now on in [`apart`] instead of [`count`].
pub fn count_apart() {
    COUNTED_APART.with(|c| c.set(true));
}

#[inline(always)]
fn counted() {
    let counter = if COUNTED_APART.with(Cell::get) { &APART } else { &ALLOCATIONS };
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod interpose {
    use super::counted;
    use libc::{c_int, c_void, size_t};

    extern "C" {
        fn __libc_malloc(size: size_t) -> *mut c_void;
        fn __libc_calloc(n: size_t, size: size_t) -> *mut c_void;
        fn __libc_realloc(ptr: *mut c_void, size: size_t) -> *mut c_void;
        fn __libc_memalign(align: size_t, size: size_t) -> *mut c_void;
        fn __libc_valloc(size: size_t) -> *mut c_void;
        fn __libc_pvalloc(size: size_t) -> *mut c_void;
    }

    /// # Safety
    /// The C `malloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `malloc` contract, passed on unchanged.
        unsafe { __libc_malloc(size) }
    }

    /// # Safety
    /// The C `calloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `calloc` contract, passed on unchanged.
        unsafe { __libc_calloc(n, size) }
    }

    /// # Safety
    /// The C `realloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `realloc` contract, passed on unchanged.
        unsafe { __libc_realloc(ptr, size) }
    }

    /// # Safety
    /// The C `reallocarray` contract.
    #[no_mangle]
    pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
        match n.checked_mul(size) {
            // SAFETY: the caller's `reallocarray` contract is `realloc`'s for the product.
            Some(total) => unsafe { realloc(ptr, total) },
            None => {
                // SAFETY: `__errno_location` returns this thread's errno, always valid.
                unsafe { *libc::__errno_location() = libc::ENOMEM };
                std::ptr::null_mut()
            }
        }
    }

    /// # Safety
    /// The C `memalign` contract.
    #[no_mangle]
    pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `memalign` contract, passed on unchanged.
        unsafe { __libc_memalign(align, size) }
    }

    /// # Safety
    /// The C `aligned_alloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
        counted();
        // SAFETY: `aligned_alloc`'s contract is `memalign`'s.
        unsafe { __libc_memalign(align, size) }
    }

    /// # Safety
    /// The C `posix_memalign` contract.
    #[no_mangle]
    pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, size: size_t) -> c_int {
        if !align.is_power_of_two() || !align.is_multiple_of(std::mem::size_of::<*mut c_void>()) {
            return libc::EINVAL;
        }
        counted();
        // SAFETY: `align` was checked above as `posix_memalign` requires.
        let p = unsafe { __libc_memalign(align, size) };
        if p.is_null() {
            return libc::ENOMEM;
        }
        // SAFETY: the caller passes a valid `out`, as `posix_memalign` requires.
        unsafe { *out = p };
        0
    }

    /// # Safety
    /// The C `valloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `valloc` contract, passed on unchanged.
        unsafe { __libc_valloc(size) }
    }

    /// # Safety
    /// The C `pvalloc` contract.
    #[no_mangle]
    pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
        counted();
        // SAFETY: the caller's `pvalloc` contract, passed on unchanged.
        unsafe { __libc_pvalloc(size) }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod global {
    use super::counted;
    use std::alloc::{GlobalAlloc, Layout, System};

    struct Counting;

    // SAFETY: every call is forwarded unchanged to the system allocator.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            counted();
            System.alloc(layout)
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            counted();
            System.alloc_zeroed(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            counted();
            System.realloc(ptr, layout, new_size)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}
