//! `reflexd inspect`, `check` and `bench` driven as a user runs them: the real binary, the real
//! plugin libraries loaded with dlopen from the directory holding `reflexd` (cargo builds them
//! there with `cargo test --workspace`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::exe_dir;

fn reflexd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflexd")).args(args).output().expect("run reflexd")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench_model(variant: &str) -> String {
    repo().join("examples/bench").join(variant).join("reflex.toml").display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A user error: exit status 1, stderr exactly one `error:` line containing `needle`, no panic.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "expected {needle:?} in {err}");
}

/// (params, MACs, receptive field) of one layer in `inspect`'s table.
fn inspect_row(table: &str, layer: &str) -> (u64, u64, String) {
    let row = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(layer))
        .unwrap_or_else(|| panic!("no row {layer}:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let n = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    // layer plugin input(1 or 2 words) output(1 or 2 words) params MACs rf recomputed(words)
    let at = cells.iter().rposition(|c| c.ends_with(']')).unwrap_or_else(|| panic!("no shapes in {row}")) + 1;
    (n(cells[at]), n(cells[at + 1]), cells[at + 2].to_string())
}

#[test]
fn check_accepts_every_bundled_model() {
    exe_dir();
    for v in ["standard", "dilated", "depthwise", "grouped", "residual"] {
        let out = reflexd(&["check", "--config", &bench_model(v)]);
        assert!(out.status.success(), "{v}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("OK: 8 layers"), "{v}: {}", text(&out.stdout));
    }
}

/// Every config a user is pointed at — the defaults, the demo, the trained models — is valid.
#[test]
fn check_accepts_every_shipped_config() {
    exe_dir();
    let mut configs: Vec<PathBuf> =
        ["config/reflex.toml", "config/demo.toml", "config/serial-imu.toml"].iter().map(|c| repo().join(c)).collect();
    configs.extend(
        ["standard", "dilated", "depthwise", "grouped", "residual"]
            .map(|v| repo().join("examples/models").join(v).join("reflex.toml")),
    );
    for c in configs {
        let out = reflexd(&["check", "--config", c.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", c.display(), text(&out.stderr));
    }
}

#[test]
fn inspect_counts_macs_params_and_receptive_field_by_the_textbook() {
    exe_dir();
    let std = reflexd(&["inspect", "--config", &bench_model("standard")]);
    assert!(std.status.success(), "{}", text(&std.stderr));
    let std = text(&std.stdout);
    // conv2: out·L·in·k = 64·128·64·5; params 64·64·5 + 64 bias + 4·64 BatchNorm.
    assert_eq!(inspect_row(&std, "conv2"), (64 * 64 * 5 + 64 + 256, 64 * 128 * 64 * 5, "9".into()));
    // Six k = 5 layers: 1 + 6·4 samples.
    assert_eq!(inspect_row(&std, "conv6").2, "25");
    assert_eq!(inspect_row(&std, "pool").2, "-");
    assert_eq!(inspect_row(&std, "fc"), (64 * 4 + 4, 64 * 4, "-".into()));
    assert!(std.contains("libconv_standard.so (sha256 "), "{std}");

    let dw = text(&reflexd(&["inspect", "--config", &bench_model("depthwise")]).stdout);
    // Depthwise 64·128·1·5 plus pointwise 64·128·64·1: about k times fewer than standard.
    let (_, dw_macs, _) = inspect_row(&dw, "conv2");
    assert_eq!(dw_macs, 64 * 128 * 5 + 64 * 128 * 64);
    let saving = (64 * 128 * 64 * 5) as f64 / dw_macs as f64;
    assert!(saving > 4.0 && saving < 5.0, "{saving}");

    let dil = text(&reflexd(&["inspect", "--config", &bench_model("dilated")]).stdout);
    // Dilations 1, 2, 4, 8, 1, 2 with k = 5: 1 + 4·(1+2+4+8+1+2).
    assert_eq!(inspect_row(&dil, "conv6").2, "73");

    let grp = text(&reflexd(&["inspect", "--config", &bench_model("grouped")]).stdout);
    // groups = 8: out·L·(in/g)·k.
    assert_eq!(inspect_row(&grp, "conv2").1, 64 * 128 * 8 * 5);
}

#[test]
fn bench_json_has_the_documented_shape() {
    exe_dir();
    let out = reflexd(&["bench", "--json", "--config", &bench_model("residual")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let total = &v["total"];
    assert!(total["median_us"].as_f64().unwrap() > 0.0);
    assert!(total["p99_us"].as_f64().unwrap() >= total["median_us"].as_f64().unwrap());
    let layers = v["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["res1", "res2", "res3", "res4", "res5", "res6", "pool", "fc"]);
    assert!(layers.iter().all(|l| l["median_us"].as_f64().unwrap() >= 0.0));
    assert!(v["windows_per_s"].as_f64().unwrap() > 0.0);

    let table = reflexd(&["bench", "--config", &bench_model("residual")]);
    let table = text(&table.stdout);
    assert!(table.lines().any(|l| l.starts_with("total")), "{table}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn config_with(plugin_dir: &Path, plugin: &str, keys: &str) -> String {
    format!(
        "[source]\nchannels = 2\n[window]\nlength = 16\n[model]\nplugin_dir = \"{}\"\n\
         [[model.layers]]\nname = \"l\"\nplugin = \"{plugin}\"\n{keys}\n\
         [[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n",
        plugin_dir.display()
    )
}

#[test]
fn a_third_party_plugin_loads_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "r.toml", &config_with(&exe_dir(), "moving_average", "length = 4"));
    let out = reflexd(&["inspect", "--config", &cfg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("libmoving_average.so"), "{table}");
    assert_eq!(inspect_row(&table, "l").2, "4");
}

#[test]
fn user_errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml").display().to_string();
    assert_one_line_error(&reflexd(&["check", "--config", &missing]), "nope.toml: cannot read");
    assert_one_line_error(&reflexd(&["bench", "--config", &missing]), "nope.toml: cannot read");

    let cfg = write(dir.path(), "bad.toml", "[source]\nchannels = 2\n[window]\nlength = 16\n[model]\nweights = \"missing.safetensors\"\n[[model.layers]]\nname = \"f\"\nplugin = \"flatten\"\n");
    assert_one_line_error(&reflexd(&["inspect", "--config", &cfg]), "missing.safetensors: cannot read");

    let cfg = write(dir.path(), "syntax.toml", "[source\nchannels = 2\n");
    assert_one_line_error(&reflexd(&["check", "--config", &cfg]), "syntax.toml:1:");

    // An IMU that is not there when the daemon starts is the user's error, not something to wait for.
    let device = format!("[source]\npath = \"{}/ttyNONE\"\n", dir.path().display());
    let text = device + &config_with(&exe_dir(), "moving_average", "length = 2").replace("[source]\n", "");
    let cfg = write(dir.path(), "device.toml", &text);
    assert_one_line_error(
        &reflexd(&["run", "--config", &cfg]),
        "ttyNONE: cannot open the serial device: No such file or directory",
    );

    let cfg = write(dir.path(), "plugin.toml", &config_with(&exe_dir(), "conv_nonesuch", ""));
    assert_one_line_error(
        &reflexd(&["check", "--config", &cfg]),
        "layer l (conv_nonesuch): plugin `conv_nonesuch` not found",
    );
}

#[test]
fn check_lists_every_problem_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let weights = repo().join("examples/bench/standard/weights.safetensors");
    let text_cfg = std::fs::read_to_string(bench_model("standard"))
        .unwrap()
        .replace("weights = \"weights.safetensors\"", &format!("weights = \"{}\"", weights.display()))
        .replacen("kernel_size = 5", "kernel_size = 3", 1)
        .replacen("padding = \"same\"", "padding = \"same\"\ndilation = 2", 1)
        .replace("labels = [\"walk\", \"stairs_up\", \"stairs_down\", \"stand\"]", "labels = [\"walk\"]");
    let cfg = write(dir.path(), "r.toml", &text_cfg);
    let out = reflexd(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("error: ") && l.contains("r.toml: ")), "{err}");
    assert!(lines.iter().any(|l| l.contains("layer conv1 (conv_standard): unknown field `dilation`")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Weights saved as `nn.Sequential(...).state_dict()`: one line naming the cause and the fix.
#[test]
fn check_explains_a_bare_sequential_state_dict_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("sequential.safetensors");
    let (w, m) = ([0.5f32; 6 * 64 * 5].map(f32::to_le_bytes).concat(), [0.0f32; 64].map(f32::to_le_bytes).concat());
    let views = [
        ("0.weight", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64, 6, 5], &w).unwrap()),
        ("1.running_mean", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64], &m).unwrap()),
    ];
    safetensors::serialize_to_file(views, &None, &weights).unwrap();
    let text_cfg = std::fs::read_to_string(bench_model("standard"))
        .unwrap()
        .replace("weights = \"weights.safetensors\"", &format!("weights = \"{}\"", weights.display()));
    let cfg = write(dir.path(), "r.toml", &text_cfg);
    assert_one_line_error(
        &reflexd(&["check", "--config", &cfg]),
        "sequential.safetensors: the tensors are named like a bare nn.Sequential state_dict ('0.weight', '1.running_mean', …); \
         Reflex names them after the config's layers (conv1.weight …): export the model with reflex.export(",
    );
}

/// A shared library that is not a Reflex plugin, a plugin built for another ABI major, and
/// plugins that someone else could have modified are all refused, naming the file.
#[test]
fn foreign_and_insecure_libraries_are_refused() {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    // A real Rust cdylib, under a name whose symbol it does not export.
    std::fs::copy(exe_dir().join("libconv_standard.so"), dir.join("libimpostor.so")).unwrap();
    // Real shared libraries built from C: one claims ABI 99, one has the wrong magic.
    let c = "struct h { char magic[8]; unsigned major, minor; };\n\
             static const struct h future = { {'R','E','F','L','E','X','P','L'}, 99, 0 };\n\
             static const struct h other = { {'N','O','T','R','E','F','L','X'}, 1, 0 };\n\
             const void *reflex_plugin_future(void) { return &future; }\n\
             const void *reflex_plugin_other(void) { return &other; }\n";
    let src = dir.join("fake.c");
    std::fs::write(&src, c).unwrap();
    for name in ["future", "other"] {
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.join(format!("lib{name}.so")))
            .arg(&src)
            .status()
            .expect("a C compiler (cc) builds the fake plugins");
        assert!(status.success());
    }
    let cfgs = tempfile::tempdir().unwrap();
    let check = |plugin: &str| {
        let cfg = write(cfgs.path(), &format!("{plugin}.toml"), &config_with(dir, plugin, ""));
        reflexd(&["check", "--config", &cfg])
    };
    assert_one_line_error(
        &check("impostor"),
        "libimpostor.so: not a Reflex plugin (no symbol `reflex_plugin_impostor`)",
    );
    assert_one_line_error(&check("future"), "libfuture.so: built for plugin ABI 99.0");
    assert_one_line_error(
        &check("other"),
        "libother.so: not a Reflex plugin (its descriptor has the wrong magic number)",
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("libimpostor.so"), std::fs::Permissions::from_mode(0o757)).unwrap();
    assert_one_line_error(&check("impostor"), "libimpostor.so: refused: it is writable by every user");
    std::fs::set_permissions(dir.join("libimpostor.so"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_one_line_error(&check("future"), "refused: it is writable by every user");
}

/// `replay` is lossless all the way to its output: a reader that takes its time (a pipe that
/// fills, a slow disk) gets every record, not the ones a drop-oldest sink queue kept.
#[test]
fn replay_to_a_slow_reader_loses_no_record() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = exe_dir();
    let log = repo().join("examples/data/gaitmap/stair_up_left.csv");
    let mut child = Command::new(dir.join("reflexd"))
        .args(["replay", "--config", &repo().join("config/demo.toml").to_string_lossy()])
        .arg(&log)
        // One window per sample: ~5000 records, far more than a pipe and a sink queue hold.
        .env("REFLEX__WINDOW__HOP", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(child.wait().unwrap().success());
    let samples = std::fs::read_to_string(&log).unwrap().lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    let expected = samples - 128 + 1;
    let windows: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["window"].as_u64().unwrap())
        .collect();
    assert_eq!(windows.len(), expected, "records written");
    assert!(windows.iter().enumerate().all(|(i, &w)| w == i as u64), "every window, in order");
}

/// The demo replayed as fast as it goes and recorded with `compression`.
fn record_demo(dir: &Path, compression: &str) -> PathBuf {
    let rec = dir.join(format!("demo-{compression}.mcap"));
    let config = repo().join("config/demo.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_reflexd"))
        .args(["run", "--config", config.to_str().unwrap(), "--record", rec.to_str().unwrap()])
        .args(["--compression", compression])
        .env("REFLEX__SOURCE__SPEED", "max")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    rec
}

#[test]
fn recordings_are_compressed_named_and_described_by_info() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let size = |c: &str| std::fs::metadata(record_demo(dir.path(), c)).unwrap().len();
    let (none, zstd, lz4) = (size("none"), size("zstd"), size("lz4"));
    println!("demo recording: none {none} B, zstd {zstd} B, lz4 {lz4} B");
    assert!(zstd * 2 < none && lz4 < none, "none {none}, zstd {zstd}, lz4 {lz4}");

    for c in ["none", "zstd", "lz4"] {
        let rec = dir.path().join(format!("demo-{c}.mcap"));
        // The official reader: named values, and the schema that names them.
        let bytes = std::fs::read(&rec).unwrap();
        let first = mcap::MessageStream::new(&bytes)
            .unwrap()
            .map(|m| m.unwrap())
            .find(|m| m.channel.topic == "/imu/samples")
            .unwrap();
        let sample: serde_json::Value = serde_json::from_slice(&first.data).unwrap();
        assert!(sample["acc_x"].is_number() && sample["gyr_z"].is_number(), "{sample}");
        let schema = first.channel.schema.as_ref().unwrap();
        assert!(String::from_utf8_lossy(&schema.data).contains("\"gyr_y\""));

        let out = reflexd(&["info", rec.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let info = text(&out.stdout);
        assert!(info.contains("channel names: acc_x [m/s^2], acc_y [m/s^2], acc_z [m/s^2], gyr_x [deg/s]"), "{info}");
        assert!(info.contains("/imu/samples: 5130 messages") && info.contains("generations: 1"), "{info}");
        assert!(info.contains("format: csv") && info.contains("weights_sha256: "), "{info}");

        // And it replays, with the same records whatever the compression.
        let out =
            reflexd(&["replay", "--config", repo().join("config/demo.toml").to_str().unwrap(), rec.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).lines().count(), 157, "{c}");
    }

    let out = reflexd(&["run", "--compression", "gzip"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("zstd, lz4 or none"));
    let not_mcap = dir.path().join("x.mcap");
    std::fs::write(&not_mcap, b"hello").unwrap();
    assert_one_line_error(&reflexd(&["info", not_mcap.to_str().unwrap()]), "x.mcap");
}

/// `reflexd inspect | head -1`: a reader that goes away ends the report quietly, never with a
/// panic and a backtrace.
#[test]
fn a_report_whose_reader_goes_away_does_not_panic() {
    use std::process::Stdio;
    exe_dir();
    for args in [vec!["inspect", "--config"], vec!["check", "--config"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reflexd"))
            .args(&args)
            .arg(bench_model("standard"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the report is written
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked") && !err.contains("error"), "{args:?}: {err}");
    }
}

/// One flipped byte in a recording's chunk ended the replay there with a false "cut short"
/// and exit 0. Damage in the middle is not a power cut: the replay delivers what precedes it,
/// then exits 1 naming the chunk; `info` says "damaged".
#[test]
fn a_flipped_byte_in_a_recording_is_damage_and_exit_1() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let rec = record_demo(dir.path(), "zstd");
    let mut bytes = std::fs::read(&rec).unwrap();
    let summary = mcap::Summary::read(&bytes).unwrap().unwrap();
    let chunks: Vec<u64> = summary.chunk_indexes.iter().map(|c| c.chunk_start_offset).collect();
    let last = &summary.chunk_indexes[chunks.len() - 1];
    let middle = (last.chunk_start_offset + last.chunk_length / 2) as usize;
    bytes[middle] ^= 0x10;
    let damaged = dir.path().join("damaged.mcap");
    std::fs::write(&damaged, &bytes).unwrap();

    let out_file = dir.path().join("out.jsonl");
    let config = repo().join("config/demo.toml");
    let args = ["replay", "--config", config.to_str().unwrap(), "--out", out_file.to_str().unwrap()];
    let out = reflexd(&[&args[..], &[damaged.to_str().unwrap()]].concat());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(lines.len(), 1, "one line says what happened: {err}");
    let want = format!("damaged.mcap: damaged, replayed only up to it: the chunk at byte {}", last.chunk_start_offset);
    assert!(lines[0].starts_with("error: ") && lines[0].contains(&want), "{err}");
    // Neither a power cut, nor input that does not fit (16 KiB recorded reads were said to
    // hold no sample before they had been decoded).
    assert!(!err.contains("cut short") && !err.contains("does not fit"), "{err}");
    let delivered = std::fs::read_to_string(&out_file).unwrap().lines().count();
    assert!(delivered < 157, "{delivered} records: the damaged chunk's windows cannot all be there");
    if chunks.len() > 1 {
        assert!(delivered > 0, "what precedes the damage is delivered");
    }
    let info = reflexd(&["info", damaged.to_str().unwrap()]);
    assert!(text(&info.stdout).contains("damaged: the chunk at byte"), "{}", text(&info.stdout));
}

/// Finite weights near f32's limit (3e38) passed `check`, and every window then came out NaN
/// or infinite. A model that overflows on a plain window is refused by `check` (and `run`).
#[test]
fn weights_that_overflow_f32_are_refused_by_check() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let model = PathBuf::from(bench_model("standard"));
    let mut bytes = std::fs::read(model.parent().unwrap().join("weights.safetensors")).unwrap();
    // conv1.weight's values become 3e38, in place.
    let (start, len) = {
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let data = tensors.tensor("conv1.weight").unwrap().data();
        (data.as_ptr() as usize - bytes.as_ptr() as usize, data.len())
    };
    for v in bytes[start..start + len].chunks_exact_mut(4) {
        v.copy_from_slice(&3e38f32.to_le_bytes());
    }
    std::fs::write(dir.path().join("weights.safetensors"), &bytes).unwrap();
    let cfg = dir.path().join("reflex.toml");
    std::fs::copy(&model, &cfg).unwrap();
    let out = reflexd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_one_line_error(&out, "reflex.toml: the model outputs");
    assert!(text(&out.stderr).contains("its weights overflow f32"), "{}", text(&out.stderr));
}

/// Every recording of the fuzz corpus (seeds made by reflexd, and the inputs that once failed:
/// fuzz/README.md) through the binary as a user runs it: `info`, and `replay` with the
/// recording's own config — a result or exit 1 with error lines, never a panic.
#[test]
fn every_recording_of_the_fuzz_corpus_is_read_without_a_panic() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.jsonl");
    let corpus = repo().join("fuzz/corpus/mcap");
    let mut read = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        // The command line wants `.mcap` for a recording.
        let rec = dir.path().join("recording.mcap");
        std::fs::copy(entry.unwrap().path(), &rec).unwrap();
        for args in [vec!["info"], vec!["replay", "--out", out_file.to_str().unwrap()]] {
            let out = reflexd(&[&args[..], &[rec.to_str().unwrap()]].concat());
            let err = text(&out.stderr);
            let shown = format!("{args:?} {}: {err}", rec.display());
            assert!(matches!(out.status.code(), Some(0 | 1)), "{shown}");
            assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{shown}");
        }
        read += 1;
    }
    assert!(read >= 6, "{} holds {read} recordings", corpus.display());
}

/// Found by the soak's set-up: a log's first read (16 KiB) was judged before a line of it was
/// decoded, so every replay of a csv log longer than 4 KiB logged an error saying the input
/// did not fit the config.
#[test]
fn a_log_that_fits_is_not_said_not_to_fit() {
    exe_dir();
    let log = repo().join("examples/data/gaitmap/stair_up_left.csv");
    assert!(std::fs::metadata(&log).unwrap().len() > 16 * 1024);
    let out =
        reflexd(&["replay", "--config", repo().join("config/demo.toml").to_str().unwrap(), log.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(text(&out.stdout).lines().count(), 157);
    assert!(!err.contains("does not fit") && !err.contains("ERROR"), "{err}");
}
