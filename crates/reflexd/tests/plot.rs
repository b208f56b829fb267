//! `reflexd replay --plot FILE.svg` end to end: the real binary, the real plugins (from the
//! directory holding `reflexd`: run `cargo build --workspace` first), a real gait recording.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::exe_dir;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reflexd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reflexd")).current_dir(repo()).args(args).output().expect("run reflexd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const LOG: &str = "examples/data/gaitmap/stair_up_left.csv";

/// `<polyline>` elements with at least `min` points: the data lines, not axes or legend marks.
fn long_polylines(svg: &str, min: usize) -> usize {
    svg.split("<polyline")
        .skip(1)
        .filter(|el| {
            let points = el.split("points=\"").nth(1).and_then(|p| p.split('"').next()).unwrap_or("");
            points.split_whitespace().count() >= min
        })
        .count()
}

#[test]
fn replay_plots_the_inputs_and_the_predictions_to_svg() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("x.svg");
    let out_path = dir.path().join("records.jsonl");
    let out = reflexd(&[
        "replay",
        "--config",
        "config/demo.toml",
        "--speed",
        "max",
        "--out",
        out_path.to_str().unwrap(),
        "--plot",
        svg_path.to_str().unwrap(),
        LOG,
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // --out still gets every record.
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(&out_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.len() > 100, "{} records", records.len());
    let outputs = records[0]["values"].as_array().unwrap().len();
    assert!(outputs >= 2, "{outputs} outputs");
    // Beside the records, what they and the inputs mean.
    let sidecar = dir.path().join("records.jsonl.meta.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    assert_eq!(meta["channel_names"], serde_json::json!(["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]));
    assert_eq!(meta["units"][0], "m/s^2");
    assert_eq!(meta["outputs"], outputs);
    assert_eq!(meta["labels"].as_array().map(Vec::len), Some(outputs));

    let svg = std::fs::read_to_string(&svg_path).expect("the SVG was written");
    assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());

    // One long line per input channel and per output value.
    let lines = long_polylines(&svg, 20);
    assert!(lines >= 6 + outputs, "{lines} data lines for 6 channels and {outputs} outputs");

    // Title: the log, the config, the number of windows; legends: channel names and labels.
    assert!(svg.contains("stair_up_left.csv"));
    assert!(svg.contains("config/demo.toml"));
    assert!(svg.contains(&format!("{} windows", records.len())), "no window count {}", records.len());
    for name in ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"] {
        assert!(svg.contains(name), "no legend entry {name}");
    }
    for label in records.iter().filter_map(|r| r["label"].as_str()) {
        assert!(svg.contains(label), "no legend entry {label}");
    }
    assert!(svg.contains("time (s)"));
}

#[test]
fn plot_accepts_only_svg_and_says_so_before_replaying() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["x.png", "x", "x.svg.pdf"] {
        let path = dir.path().join(name);
        let out = reflexd(&["replay", "--config", "config/demo.toml", "--plot", path.to_str().unwrap(), LOG]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        // One line, and no log lines: the replay never started.
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("error: ") && err.contains("--plot") && err.contains(".svg"), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: a replay ran");
        assert!(!path.exists(), "{name} was created");
    }
}

#[test]
fn plot_into_a_missing_directory_fails_before_replaying() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/x.svg");
    let out = reflexd(&["replay", "--config", "config/demo.toml", "--plot", path.to_str().unwrap(), LOG]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: --plot ") && err.contains("no such directory"), "{err}");
}

#[test]
fn plot_of_an_empty_log_is_one_error_line() {
    exe_dir();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("empty.csv");
    std::fs::write(&log, "").unwrap();
    let svg = dir.path().join("x.svg");
    let out =
        reflexd(&["replay", "--config", "config/demo.toml", "--plot", svg.to_str().unwrap(), log.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("--plot") && errors[0].contains("no samples"), "{err}");
    assert!(!svg.exists());
}

/// A plugin-free model on 3 channels with 10 classes: `[3, 16]` → global average → linear.
fn ten_class_config(dir: &Path, source: &str) -> PathBuf {
    let weights = dir.join("w.safetensors");
    let w: Vec<f32> = (0..30).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
    support::write_weights(&weights, &[("fc.weight", vec![10, 3], w), ("fc.bias", vec![10], vec![0.0; 10])]);
    let labels: Vec<String> = (0..10).map(|i| format!("\"class_{i}\"")).collect();
    let cfg = dir.join("ten.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nformat = \"csv\"\nchannels = 3\ntime_column = true\n{source}\n[window]\nlength = 16\nhop = 4\n\
             [model]\nweights = \"w.safetensors\"\n[[model.layers]]\nname = \"pool\"\nplugin = \"global_avg_pool\"\n\
             [[model.layers]]\nname = \"fc\"\nplugin = \"linear\"\nout_features = 10\n\
             [output]\nkind = \"classify\"\nlabels = [{}]\n",
            labels.join(", ")
        ),
    )
    .unwrap();
    cfg
}

fn plot(cfg: &Path, log: &Path, svg: &Path) -> String {
    let out =
        reflexd(&["replay", "--config", cfg.to_str().unwrap(), "--plot", svg.to_str().unwrap(), log.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    std::fs::read_to_string(svg).unwrap()
}

#[test]
fn a_sample_index_time_column_is_labelled_as_samples_and_ten_classes_make_a_heat_strip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ten_class_config(dir.path(), "");
    // A Wiimote-style log: the time column counts samples; the header names the channels.
    let mut log = String::from("index,pitch,roll,yaw\n");
    for i in 0..200 {
        let x = i as f32 / 10.0;
        log += &format!("{i},{},{},{}\n", x.sin(), x.cos(), (x / 3.0).sin());
    }
    let log_path = dir.path().join("wiimote.csv");
    std::fs::write(&log_path, log).unwrap();
    let svg = plot(&cfg, &log_path, &dir.path().join("w.svg"));
    assert!(svg.contains("time column counts samples"), "no sample axis");
    assert!(!svg.contains("time (s)"));
    for name in ["pitch", "roll", "yaw"] {
        assert!(svg.contains(name), "no channel {name} from the csv header");
    }
    assert!(!svg.contains(">ch0<"));
    assert!(svg.contains("heat strip"));
    for i in 0..10 {
        assert!(svg.contains(&format!("class_{i}")), "no row class_{i}");
    }
}

#[test]
fn units_group_panels_spikes_are_clipped_and_time_jumps_and_decode_errors_marked() {
    let dir = tempfile::tempdir().unwrap();
    let names = "channel_names = [\"acc_x\", \"acc_y\", \"gyr_z\"]\nunits = [\"m/s^2\", \"m/s^2\", \"deg/s\"]";
    let cfg = ten_class_config(dir.path(), names);
    let mut log = String::new();
    for i in 0..300 {
        // 100 Hz, with a 0.52 s gap after sample 150.
        let t = i as f64 * 0.01 + if i > 150 { 0.52 } else { 0.0 };
        let x = i as f32 / 10.0;
        let spike = if i == 100 { 1000.0 } else { 0.0 };
        log += &format!("{t},{},{},{}\n", x.sin() + spike, x.cos(), 100.0 * x.sin());
        if i == 250 {
            log += "2.5,garbage\n";
        }
    }
    let log_path = dir.path().join("jump.csv");
    std::fs::write(&log_path, log).unwrap();
    let svg = plot(&cfg, &log_path, &dir.path().join("j.svg"));
    assert!(svg.contains("acc_x, acc_y (m/s^2)"), "no acceleration panel");
    assert!(svg.contains("gyr_z (deg/s)"), "no gyroscope panel");
    assert!(svg.contains("time (s)"));
    assert!(svg.contains("1 value beyond the"), "the spike is not clipped and counted");
    // The time jump: a red mark.
    assert!(svg.contains("#C80000"), "no time-jump mark");
    // The malformed line: an orange mark.
    assert!(svg.contains("#E68C00"), "no decode-error mark");
}
