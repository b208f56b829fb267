//! The fuzz targets on stable, in every `cargo test`: each target's committed corpus
//! (`fuzz/corpus/TARGET/`: seeds from real files, and every input that ever failed) replayed,
//! then deterministic mutations of it for `REFLEX_FUZZ_SECS` seconds (default 3). Run longer by
//! hand: `REFLEX_FUZZ_SECS=600 cargo test --release -p reflex-fuzz` (docs: fuzz/README.md).

use reflex_fuzz::harness::{fuzz, Counting, Settings};
use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(name: &str) {
    let target = reflex_fuzz::target(name).expect("a target of that name");
    let settings = Settings::from_env().unwrap_or_else(|e| panic!("{e}"));
    let corpus = root().join("fuzz/corpus").join(name);
    let crashes = root().join("target/fuzz-crashes");
    match fuzz(target, &corpus, &crashes, &settings) {
        Ok(report) => {
            assert!(report.corpus > 0, "{}: an empty corpus", corpus.display());
            println!("{name}: {report}");
        }
        Err(e) => panic!("fuzz target {name}: {e}"),
    }
}

#[test]
fn binary() {
    run("binary");
}

#[test]
fn csv() {
    run("csv");
}

#[test]
fn witmotion() {
    run("witmotion");
}

#[test]
fn config() {
    run("config");
}

#[test]
fn weights() {
    run("weights");
}

#[test]
fn mcap() {
    run("mcap");
}

/// Every target has a test above, and the cargo-fuzz crate a binary of the same name.
#[test]
fn every_target_is_fuzzed_both_ways() {
    let cargo_fuzz = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
    let this = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus.rs")).unwrap();
    for t in &reflex_fuzz::TARGETS {
        assert!(this.contains(&format!("run(\"{}\")", t.name)), "no test runs target {}", t.name);
        assert!(cargo_fuzz.contains(&format!("name = \"{}\"", t.name)), "fuzz/Cargo.toml has no target {}", t.name);
        assert!(
            root().join("fuzz/fuzz_targets").join(format!("{}.rs", t.name)).is_file(),
            "no fuzz_targets/{}.rs",
            t.name
        );
    }
}

/// The harness itself: a target that panics, hoards memory or dawdles on some input is
/// reported, and that input saved.
#[test]
fn the_harness_finds_and_saves_a_panic_a_hoard_and_a_slow_input() {
    fn panics(data: &[u8]) {
        assert!(!data.contains(&7), "a seven");
    }
    fn hoards(data: &[u8]) {
        if data.contains(&7) {
            std::hint::black_box(vec![1u8; 4 << 20]);
        }
    }
    fn dawdles(data: &[u8]) {
        if data.contains(&7) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    std::fs::write(corpus.join("seed"), b"abc").unwrap();
    let settings = Settings { secs: 20.0, seed: Some(1), timeout: std::time::Duration::from_millis(100), max_len: 64 };
    for (name, run, why) in [
        ("panics", panics as fn(&[u8]), "panicked: a seven"),
        ("hoards", hoards, "held 4 MiB at once (the limit is 1 MiB)"),
        ("dawdles", dawdles, "took 0.2 s"),
    ] {
        let target = reflex_fuzz::Target { name, run, memory: 1 << 20 };
        let e = fuzz(&target, &corpus, &dir.path().join("crashes"), &settings).unwrap_err();
        assert!(e.contains(why), "{e}");
        let saved = e.rsplit("saved as ").next().unwrap();
        assert!(std::fs::read(saved).unwrap().contains(&7), "{e}");
    }
}
