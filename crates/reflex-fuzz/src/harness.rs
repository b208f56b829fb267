//! The stable harness: replays a target's committed corpus, then feeds it deterministic
//! mutations of that corpus (a seeded PRNG: bit flips, byte inserts and deletes, copies,
//! splices of other inputs, interesting integers, tokens of the corpus) for a bounded time.
//!
//! Every input must return without a panic, within [`Settings::timeout`], holding at most the
//! target's [`memory`](crate::Target::memory) at once. The first input that does not is saved
//! to a file and reported; one that hangs or asks for absurd memory is saved, and the process
//! aborts (nothing else can stop it). Errors returned by the code under test are fine.
//!
//! Memory is counted by [`Counting`], which the test binary installs as its global allocator:
//! per thread, so targets fuzzed on parallel test threads do not see each other's.

use crate::Target;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long and how hard to fuzz.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Mutating time per target, after the corpus (`REFLEX_FUZZ_SECS`, default 3).
    pub secs: f64,
    /// The PRNG's seed (`REFLEX_FUZZ_SEED`; default: one per target, from its name).
    pub seed: Option<u64>,
    /// The most time one input may take (`REFLEX_FUZZ_TIMEOUT_SECS`, default 10).
    pub timeout: Duration,
    /// Mutants are cut to this many bytes.
    pub max_len: usize,
}

impl Settings {
    /// From the environment; a variable that does not parse is an error naming it.
    pub fn from_env() -> Result<Settings, String> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| format!("{name}={v}: not a number")),
                Err(_) => Ok(None),
            }
        }
        let secs: f64 = var("REFLEX_FUZZ_SECS")?.unwrap_or(3.0);
        let timeout: f64 = var("REFLEX_FUZZ_TIMEOUT_SECS")?.unwrap_or(10.0);
        if !(secs.is_finite() && secs >= 0.0 && timeout.is_finite() && timeout > 0.0) {
            return Err("REFLEX_FUZZ_SECS and REFLEX_FUZZ_TIMEOUT_SECS must be positive".into());
        }
        Ok(Settings {
            secs,
            seed: var("REFLEX_FUZZ_SEED")?,
            timeout: Duration::from_secs_f64(timeout),
            max_len: 1 << 16,
        })
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Corpus inputs replayed.
    pub corpus: usize,
    /// Mutants run.
    pub mutants: u64,
    /// The seed used.
    pub seed: u64,
    /// The slowest input's time.
    pub slowest: Duration,
    /// The most memory one input held at once, in bytes.
    pub peak: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} corpus inputs, {} mutants (seed {}); slowest input {:.1} ms, peak memory {} KiB",
            self.corpus,
            self.mutants,
            self.seed,
            self.slowest.as_secs_f64() * 1e3,
            self.peak / 1024
        )
    }
}

/// Replays `corpus_dir` through `target`, then mutants of it for `settings.secs`. A failing
/// input is written to `crash_dir`; the error says which, and why.
pub fn fuzz(target: &Target, corpus_dir: &Path, crash_dir: &Path, settings: &Settings) -> Result<Report, String> {
    let corpus = read_corpus(corpus_dir)?;
    let seed = settings.seed.unwrap_or_else(|| fnv(target.name.as_bytes()));
    let mut runner = Runner::new(target, crash_dir, settings);
    let mut report = Report { corpus: corpus.len(), mutants: 0, seed, slowest: Duration::ZERO, peak: 0 };
    for (path, input) in &corpus {
        runner.check(input, &mut report).map_err(|e| format!("corpus input {}: {e}", path.display()))?;
    }
    let inputs: Vec<Vec<u8>> = corpus.into_iter().map(|(_, bytes)| bytes).collect();
    let mut mutator = Mutator::new(seed, &inputs);
    let deadline = Instant::now() + Duration::from_secs_f64(settings.secs);
    let mut input = Vec::new();
    while Instant::now() < deadline && !inputs.is_empty() {
        mutator.next(&inputs, &mut input, settings.max_len);
        report.mutants += 1;
        runner.check(&input, &mut report).map_err(|e| format!("mutant {} of seed {seed}: {e}", report.mutants))?;
    }
    Ok(report)
}

/// Every file of a corpus directory, in name order.
pub fn read_corpus(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).map(|b| (p.clone(), b)).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// FNV-1a: a seed of its own per target (of its name), a name per saved input (of its bytes).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Runs inputs one at a time under the watchdog and the memory count.
struct Runner {
    target: Target,
    crash_dir: PathBuf,
    timeout: Duration,
    watch: Arc<Watch>,
}

/// What the watchdog sees: the input being run and since when.
struct Watch {
    input: Mutex<Vec<u8>>,
    /// Nanoseconds after `epoch` the input started; 0 while idle.
    started: AtomicU64,
    epoch: Instant,
    done: AtomicBool,
}

impl Runner {
    fn new(target: &Target, crash_dir: &Path, settings: &Settings) -> Runner {
        let watch = Arc::new(Watch {
            input: Mutex::new(Vec::new()),
            started: AtomicU64::new(0),
            epoch: Instant::now(),
            done: AtomicBool::new(false),
        });
        let (w, dump, name, timeout) =
            (watch.clone(), crash_dir.join(format!("{}-hang", target.name)), target.name, settings.timeout);
        std::thread::spawn(move || watchdog(&w, &dump, name, timeout));
        Runner { target: *target, crash_dir: crash_dir.to_path_buf(), timeout: settings.timeout, watch }
    }

    /// Runs one input; on failure saves it and says why.
    fn check(&mut self, input: &[u8], report: &mut Report) -> Result<(), String> {
        {
            let mut held = self.watch.input.lock().unwrap_or_else(PoisonError::into_inner);
            held.clear();
            held.extend_from_slice(input);
        }
        let dump = self.crash_dir.join(format!("{}-memory", self.target.name));
        let start = Instant::now();
        self.watch.started.store(self.watch.epoch.elapsed().as_nanos().max(1) as u64, Ordering::SeqCst);
        let (outcome, peak) = measured(input, &dump, || catch_unwind(AssertUnwindSafe(|| (self.target.run)(input))));
        self.watch.started.store(0, Ordering::SeqCst);
        let took = start.elapsed();
        report.slowest = report.slowest.max(took);
        report.peak = report.peak.max(peak);
        let why = match outcome {
            Err(panic) => Some(format!("panicked: {}", panic_message(&panic))),
            Ok(()) if peak > self.target.memory => {
                Some(format!("held {} MiB at once (the limit is {} MiB)", peak >> 20, self.target.memory >> 20))
            }
            Ok(()) if took > self.timeout => {
                Some(format!("took {:.1} s (the limit is {:?})", took.as_secs_f64(), self.timeout))
            }
            Ok(()) => None,
        };
        match why {
            None => Ok(()),
            Some(why) => {
                Err(format!("{why}; the input is saved as {}", save(&self.crash_dir, self.target.name, input)))
            }
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.watch.done.store(true, Ordering::SeqCst);
    }
}

fn watchdog(watch: &Watch, dump: &Path, name: &str, timeout: Duration) {
    while !watch.done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let started = watch.started.load(Ordering::SeqCst);
        if started == 0 {
            continue;
        }
        let running = watch.epoch.elapsed().saturating_sub(Duration::from_nanos(started));
        // A hang cannot be interrupted: save the input, say so, and end the process. Slow
        // inputs that do finish are reported by `check`, without ending anything.
        if running > timeout * 2 + Duration::from_secs(5) {
            let input = watch.input.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let _ = std::fs::create_dir_all(dump.parent().unwrap_or(Path::new(".")));
            let _ = std::fs::write(dump, &input);
            eprintln!(
                "fuzz target {name}: an input has run for {running:?}: a hang; it is saved as {}",
                dump.display()
            );
            std::process::abort();
        }
    }
}

/// Writes a failing input under `dir`, named by its content; the path, for the report.
fn save(dir: &Path, target: &str, input: &[u8]) -> String {
    let path = dir.join(target).join(format!("crash-{:016x}", fnv(input)));
    let written = std::fs::create_dir_all(path.parent().unwrap_or(dir)).and_then(|()| std::fs::write(&path, input));
    match written {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(nowhere: {}: {e})", path.display()),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}

/// Deterministic mutations of a corpus.
pub struct Mutator {
    rng: fastrand::Rng,
    /// Tokens of the corpus (words, numbers) and values that break parsers.
    dict: Vec<Vec<u8>>,
}

/// Integers at the edges of their types, as bytes are read (little-endian u8…u64).
const INTERESTING: [u64; 16] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
];

/// Text that breaks parsers of numbers and tables.
const TEXT: [&str; 24] = [
    "0",
    "-1",
    "-0",
    "1e308",
    "1e-45",
    "nan",
    "inf",
    "-inf",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "65536",
    "1.5",
    "\"",
    "[[",
    "]]",
    "[",
    "]",
    "=",
    "\n",
    "{",
    "}",
    ",",
    "\u{feff}",
];

impl Mutator {
    /// A mutator seeded with `seed`, its dictionary taken from `corpus`.
    pub fn new(seed: u64, corpus: &[Vec<u8>]) -> Mutator {
        let mut dict: Vec<Vec<u8>> = TEXT.iter().map(|t| t.as_bytes().to_vec()).collect();
        let word = |b: &u8| b.is_ascii_alphanumeric() || b"_.-/".contains(b);
        for input in corpus {
            for w in input.split(|b| !word(b)).filter(|w| (2..=32).contains(&w.len())) {
                if dict.len() < 4096 && !dict.iter().any(|d| d == w) {
                    dict.push(w.to_vec());
                }
            }
        }
        Mutator { rng: fastrand::Rng::with_seed(seed), dict }
    }

    /// The next mutant, into `out`: one to eight mutations of a corpus input (or, now and
    /// then, of the previous mutant).
    pub fn next(&mut self, corpus: &[Vec<u8>], out: &mut Vec<u8>, max_len: usize) {
        if out.is_empty() || self.rng.u8(..4) != 0 {
            out.clear();
            out.extend_from_slice(&corpus[self.rng.usize(..corpus.len())]);
        }
        for _ in 0..1 << self.rng.u32(..4) {
            self.mutate(corpus, out);
        }
        out.truncate(max_len);
    }

    fn mutate(&mut self, corpus: &[Vec<u8>], data: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let at = |rng: &mut fastrand::Rng, data: &Vec<u8>| rng.usize(..=data.len());
        match rng.u8(..9) {
            0 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] ^= 1 << rng.u8(..8);
            }
            1 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] = rng.u8(..);
            }
            2 => {
                let i = at(rng, data);
                let n = rng.usize(1..=16);
                let fill: Vec<u8> = if rng.bool() { (0..n).map(|_| rng.u8(..)).collect() } else { vec![rng.u8(..); n] };
                data.splice(i..i, fill);
            }
            3 if !data.is_empty() => {
                let i = rng.usize(..data.len());
                let n = rng.usize(1..=(data.len() - i).min(64));
                data.drain(i..i + n);
            }
            4 if !data.is_empty() => {
                let (from, to) = (rng.usize(..data.len()), at(rng, data));
                let n = rng.usize(1..=(data.len() - from).min(64));
                let piece = data[from..from + n].to_vec();
                data.splice(to..to, piece);
            }
            5 => {
                let other = &corpus[rng.usize(..corpus.len())];
                if !other.is_empty() {
                    let from = rng.usize(..other.len());
                    let n = rng.usize(1..=(other.len() - from).min(256));
                    let i = at(rng, data);
                    let end = if rng.bool() { i } else { (i + n).min(data.len()) };
                    data.splice(i..end, other[from..from + n].iter().copied());
                }
            }
            6 => {
                let value = INTERESTING[rng.usize(..INTERESTING.len())];
                let width = 1 << rng.u32(..4);
                let bytes = if rng.bool() { value.to_le_bytes() } else { value.to_be_bytes() };
                let bytes = if rng.bool() { &bytes[..width] } else { &bytes[8 - width..] };
                let i = at(rng, data);
                let end = (i + width).min(data.len());
                data.splice(i..end, bytes.iter().copied());
            }
            7 => {
                let token = self.dict[rng.usize(..self.dict.len())].clone();
                let i = at(rng, data);
                let end = if rng.bool() { i } else { (i + token.len()).min(data.len()) };
                data.splice(i..end, token);
            }
            _ if !data.is_empty() => {
                let i = rng.usize(..data.len());
                data[i] = data[i].wrapping_add(rng.u8(1..=8).wrapping_mul(if rng.bool() { 1 } else { 255 }));
            }
            _ => data.push(rng.u8(..)),
        }
    }
}

/// A global allocator that counts, per thread, the bytes held; installed by the harness's
/// test binary.
pub struct Counting;

/// Past this, a request is refused (and the process aborts after saving the input): the
/// machine could not serve it, and a failed allocation cannot be caught.
const REFUSE_PAST: usize = 4 << 30;

thread_local! {
    /// Bytes held by this thread (allocated here and not freed here).
    static HELD: Cell<isize> = const { Cell::new(0) };
    /// The most held since the count was armed.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// While an input runs: where to save it if a request must be refused.
    static ARMED: Cell<Option<(*const u8, usize, *const Path)>> = const { Cell::new(None) };
}

/// Runs `f` on `input`, returning its result and the most bytes this thread held meanwhile
/// above what it held before.
fn measured<R>(input: &[u8], dump: &Path, f: impl FnOnce() -> R) -> (R, usize) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    ARMED.with(|a| a.set(Some((input.as_ptr(), input.len(), dump))));
    let result = f();
    ARMED.with(|a| a.set(None));
    (result, (PEAK.with(Cell::get) - base).max(0) as usize)
}

fn count(delta: isize) {
    let held = HELD.with(|h| {
        let v = h.get() + delta;
        h.set(v);
        v
    });
    PEAK.with(|p| p.set(p.get().max(held)));
}

/// Whether a request of `size` more bytes is past [`REFUSE_PAST`] while an input runs; if so
/// the input is saved first.
fn refused(size: usize) -> bool {
    let held = HELD.with(Cell::get).max(0) as usize;
    if held.saturating_add(size) <= REFUSE_PAST {
        return false;
    }
    let Some((ptr, len, dump)) = ARMED.with(Cell::take) else { return false };
    // SAFETY: `measured` set these from the input slice and the dump path it borrows for the
    // whole run, and took them back (`None`) before returning: they are live here. Taking them
    // disarms the check, so the allocations of the write below are served.
    let (input, dump) = unsafe { (std::slice::from_raw_parts(ptr, len), &*dump) };
    let _ = std::fs::write(dump, input);
    eprintln!("an input asked for {size} bytes while holding {held}: refused; it is saved as {}", dump.display());
    true
}

// SAFETY: every request is passed to `System` unchanged (or refused with null, which the
// contract allows); the counting touches only this thread's cells.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        count(layout.size() as isize);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        count(layout.size() as isize);
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && refused(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        count(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller guarantees the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
