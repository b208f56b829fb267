use super::*;
use proptest::prelude::*;

const GOOD: &str = r#"
[source]
channels = 6
[window]
length = 16
hop = 4
[model]
weights = "w.safetensors"
[[model.layers]]
name = "c1"
plugin = "conv_standard"
out_channels = 4
kernel_size = 3
[output]
kind = "classify"
labels = ["a", "b"]
[[sinks]]
kind = "udp"
target = "127.0.0.1:9000"
"#;

fn parse_str(text: &str) -> Result<Config, Errors> {
    parse(Path::new("/etc/reflex/reflex.toml"), text, Vec::new())
}

#[test]
fn a_good_config_loads_with_paths_resolved() {
    let c = parse_str(GOOD).unwrap();
    assert_eq!(c.model.weights.as_deref(), Some(Path::new("/etc/reflex/w.safetensors")));
    assert_eq!(c.model.layers[0].params["out_channels"], 4);
    assert!(!c.model.layers[0].params.contains_key("name"));
    assert_eq!(c.window.queue, 32);
    assert!(matches!(c.sinks[0].kind, SinkKind::Udp { .. }));
}

#[test]
fn environment_overrides_keys() {
    let env = vec![("REFLEX__WINDOW__HOP".to_string(), "2".to_string())];
    let c = parse(Path::new("r.toml"), GOOD, env).unwrap();
    assert_eq!(c.window.hop, 2);
}

#[test]
fn every_problem_is_reported_at_once_naming_section_and_key() {
    let text = GOOD
        .replace("hop = 4", "hop = 4\nhpo = 3")
        .replace("[output]", "[output]\ncolour = 1")
        .replace("channels = 6", "channels = 6\nformat = \"morse\"");
    let p = parse_str(&text).unwrap_err();
    assert_eq!(p.0.len(), 3, "{p}");
    assert!(p.0.iter().any(|l| l.to_string().contains("[window]") && l.to_string().contains("hpo")), "{p}");
    assert!(p.0.iter().any(|l| l.to_string().contains("[output]") && l.to_string().contains("colour")), "{p}");
    assert!(p.0.iter().any(|l| l.to_string().contains("[source] format") && l.to_string().contains("morse")), "{p}");
    assert!(p
        .0
        .iter()
        .all(|l| l.to_string().starts_with("/etc/reflex/reflex.toml: ") && !l.to_string().contains('\n')));
}

#[test]
fn toml_syntax_errors_give_line_and_column() {
    let p = parse_str("[source]\nchannels = = 6\n").unwrap_err();
    assert_eq!(p.0.len(), 1);
    assert!(p.0[0].to_string().starts_with("/etc/reflex/reflex.toml:2:"), "{p}");
}

#[test]
fn semantic_checks_name_the_key() {
    let text = GOOD.replace("hop = 4", "hop = 0\nstd = [1.0, 0.0]").replace("labels = [\"a\", \"b\"]", "");
    let p = parse_str(&text).unwrap_err();
    let all = p.to_string();
    assert!(all.contains("hop must be at least 1"), "{all}");
    assert!(all.contains("std has 2 entries but source.channels is 6"), "{all}");
    assert!(all.contains("std holds 0"), "{all}");
    assert!(all.contains("needs labels"), "{all}");
}

#[test]
fn layers_need_a_name_and_a_plugin() {
    let text = GOOD.replace("plugin = \"conv_standard\"", "");
    let p = parse_str(&text).unwrap_err();
    assert!(p.to_string().contains("layer c1: missing key `plugin`"), "{p}");
}

#[test]
fn sinks_reject_unknown_keys_and_bad_targets() {
    let p = parse_str(&GOOD.replace("target = \"127.0.0.1:9000\"", "target = \"nowhere\"\nport = 3")).unwrap_err();
    assert!(p.to_string().contains("port"), "{p}");
    let p = parse_str(&GOOD.replace("target = \"127.0.0.1:9000\"", "target = \"nowhere\"")).unwrap_err();
    assert!(p.to_string().contains("not host:port"), "{p}");
}

#[test]
fn speed_accepts_words_and_factors() {
    let c = parse_str(&GOOD.replace("channels = 6", "channels = 6\nspeed = 4.0")).unwrap();
    assert_eq!(c.source.speed, Speed::Factor(4.0));
    let c = parse_str(&GOOD.replace("channels = 6", "channels = 6\nspeed = \"max\"")).unwrap();
    assert_eq!(c.source.speed, Speed::Max);
    assert!(parse_str(&GOOD.replace("channels = 6", "channels = 6\nspeed = -1")).is_err());
}

#[test]
fn sizes_that_could_not_be_allocated_are_errors() {
    let p = parse_str(&GOOD.replace("length = 16", "length = 1000000000000")).unwrap_err();
    assert_eq!(p.0.len(), 1, "{p}");
    assert!(p.0[0].to_string().contains("[window] length = 1000000000000: must be at most"), "{p}");
    let p = parse_str(&GOOD.replace("length = 16", "length = 1000000").replace("channels = 6", "channels = 600"))
        .unwrap_err();
    assert!(p.to_string().contains("a window of 600 channels × 1000000 samples"), "{p}");
}

proptest! {
    // The loader's contract for `check`: whatever the bytes, an answer and never a panic.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_str(&text);
    }

    #[test]
    fn mutated_configs_never_panic(cut in 0usize..GOOD.len(), insert in "[\\[\\]=\"a-z0-9.\\n -]{0,12}") {
        let mut text = GOOD.to_string();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        let _ = parse_str(&text);
    }
}

#[test]
fn a_problem_carries_its_place_as_data() {
    let p = parse_str(&GOOD.replace("hop = 4", "hpo = 4")).unwrap_err();
    assert_eq!(p.0[0].file, Path::new("/etc/reflex/reflex.toml"));
    assert_eq!(p.0[0].place, Place::Key { section: "window".into(), key: "hpo".into() });
    let p = parse_str("[source]\nchannels = = 6\n").unwrap_err();
    assert_eq!(p.0[0].place, Place::Line { line: 2, column: 12 });
}

#[test]
fn channel_names_and_units_are_one_per_channel() {
    let good = GOOD.replace(
        "channels = 6",
        "channels = 3\nchannel_names = [\"acc_x\", \"acc_y\", \"acc_z\"]\nunits = [\"m/s^2\", \"m/s^2\", \"\"]",
    );
    let c = parse_str(&good).unwrap();
    assert_eq!(c.source.channel_names.as_deref().map(<[String]>::len), Some(3));
    assert_eq!(c.source.units.as_ref().unwrap()[2], "");
    for (names, why) in [
        ("[\"a\", \"b\"]", "channel_names has 2 entries, expected one per channel (3)"),
        ("[\"a\", \"b\", \"a\"]", "channel_names[2] = \"a\" appears twice"),
        ("[\"a\", \" \", \"c\"]", "channel_names[1] is empty"),
        ("[\"a\", \"t\", \"c\"]", "channel_names[1] = \"t\" is reserved"),
    ] {
        let text = GOOD.replace("channels = 6", &format!("channels = 3\nchannel_names = {names}"));
        let all = parse_str(&text).unwrap_err().to_string();
        assert!(all.contains("[source]") && all.contains(why), "{names}: {all}");
    }
    let text = GOOD.replace("channels = 6", "channels = 3\nunits = [\"g\"]");
    let all = parse_str(&text).unwrap_err().to_string();
    assert!(all.contains("units has 1 entries, expected one per channel (3)"), "{all}");
}

/// Issue 15: a stdout sink took any key (`kind = "stdout"` with `target = …` or a typo).
#[test]
fn a_stdout_sink_rejects_unknown_keys() {
    let stdout = GOOD.replace("kind = \"udp\"\ntarget = \"127.0.0.1:9000\"", "kind = \"stdout\"\nfromat = \"csv\"");
    let p = parse_str(&stdout).unwrap_err();
    assert!(p.to_string().contains("fromat"), "{p}");
    let stdout = GOOD.replace("kind = \"udp\"", "kind = \"stdout\"");
    let p = parse_str(&stdout).unwrap_err();
    assert!(p.to_string().contains("target"), "{p}");
    assert!(parse_str(&GOOD.replace("kind = \"udp\"\ntarget = \"127.0.0.1:9000\"", "kind = \"stdout\"")).is_ok());
}

/// Issue 15: a std of 1e-45 passed `check` and made every window inf or NaN.
#[test]
fn a_std_too_small_to_divide_by_is_an_error() {
    let with = |std: &str| GOOD.replace("hop = 4", &format!("hop = 4\nstd = [1, 1, 1, 1, 1, {std}]"));
    let p = parse_str(&with("1e-45")).unwrap_err();
    assert!(p.to_string().contains("at least 0.000001"), "{p}");
    assert!(parse_str(&with("0.001")).is_ok());
}

#[test]
fn safety_checks_its_fallback_and_neutral() {
    let c = parse_str(GOOD).unwrap();
    assert_eq!(c.safety, SafetyConfig::default());
    let c = parse_str(&(GOOD.to_string() + "[safety]\nstale_after_ms = 50\n")).unwrap();
    assert_eq!(c.safety.stale_after_ms, Some(50));
    let p = parse_str(&(GOOD.to_string() + "[safety]\nfallback = \"neutral\"\n")).unwrap_err();
    assert!(p.to_string().contains("needs neutral"), "{p}");
    let p = parse_str(&(GOOD.to_string() + "[safety]\nneutral = [1.0]\n")).unwrap_err();
    assert!(p.to_string().contains("only used with"), "{p}");
    let p = parse_str(&(GOOD.to_string() + "[safety]\ndeadline_ms = 0\n")).unwrap_err();
    assert!(p.to_string().contains("deadline_ms must be at least 1"), "{p}");
}

#[test]
fn swap_shadows_twenty_windows_unless_told() {
    assert_eq!(parse_str(GOOD).unwrap().swap.shadow_windows, 20);
    let c = parse_str(&(GOOD.to_string() + "[swap]\nshadow_windows = 0\n")).unwrap();
    assert_eq!(c.swap.shadow_windows, 0);
    let p = parse_str(&(GOOD.to_string() + "[swap]\nshadow_windows = 20000\n")).unwrap_err();
    assert!(p.to_string().contains("[swap]") && p.to_string().contains("at most 10000"), "{p}");
    let p = parse_str(&(GOOD.to_string() + "[swap]\nshadow = 3\n")).unwrap_err();
    assert!(p.to_string().contains("shadow"), "{p}");
}

#[test]
fn labels_listen_is_an_ip_and_a_port_other_than_0() {
    assert_eq!(parse_str(GOOD).unwrap().labels, None);
    let c = parse_str(&(GOOD.to_string() + "[labels]\nlisten = \"127.0.0.1:9100\"\n")).unwrap();
    assert_eq!(c.labels.unwrap().listen, "127.0.0.1:9100".parse().unwrap());
    // Not confused with the class names of [output] labels.
    assert_eq!(c.output.labels, ["a", "b"]);
    let env = vec![("REFLEX__LABELS__LISTEN".to_string(), "[::1]:9101".to_string())];
    let c = parse(Path::new("r.toml"), GOOD, env).unwrap();
    assert_eq!(c.labels.unwrap().listen, "[::1]:9101".parse().unwrap());
    for (section, want) in [
        (
            "[labels]\nlisten = \"localhost:9100\"\n",
            "[labels] listen: \"localhost:9100\" is not an IP address and port",
        ),
        ("[labels]\nlisten = \"127.0.0.1\"\n", "[labels] listen: \"127.0.0.1\" is not an IP address and port"),
        ("[labels]\nlisten = \"127.0.0.1:0\"\n", "[labels] listen = \"127.0.0.1:0\": the port must not be 0"),
        ("[labels]\n", "[labels] missing field `listen`"),
        ("[labels]\nlisten = \"127.0.0.1:9100\"\nport = 3\n", "[labels] port: unknown field `port`"),
    ] {
        let p = parse_str(&(GOOD.to_string() + section)).unwrap_err();
        assert_eq!(p.0.len(), 1, "{section}: {p}");
        assert!(p.0[0].to_string().starts_with("/etc/reflex/reflex.toml: "), "{p}");
        assert!(p.to_string().contains(want), "{section}: {p}");
    }
}

#[test]
fn runtime_pins_threads_and_checks_its_priority() {
    assert_eq!(parse_str(GOOD).unwrap().runtime, RuntimeConfig::default());
    let text = "[runtime]\nreader_cpu = 1\ninference_cpu = 1\nrealtime_priority = 80\nlock_memory = true\n\
                wake_latency_us = 0\n";
    let c = parse_str(&(GOOD.to_string() + text)).unwrap();
    let want = RuntimeConfig {
        reader_cpu: Some(1),
        inference_cpu: Some(1),
        realtime_priority: Some(80),
        lock_memory: true,
        wake_latency_us: Some(0),
    };
    assert_eq!(c.runtime, want);
    for (section, message) in [
        ("[runtime]\nrealtime_priority = 0\n", "[runtime] realtime_priority = 0: SCHED_FIFO priorities are 1 to 99"),
        ("[runtime]\nrealtime_priority = 100\n", "SCHED_FIFO priorities are 1 to 99"),
        ("[runtime]\nreader_cpu = 5000\n", "reader_cpu = 5000: at most 1023"),
        ("[runtime]\nwake_latency_us = 3000000000\n", "wake_latency_us = 3000000000: at most 2000000000"),
        ("[runtime]\nwake_latency_us = -1\n", "wake_latency_us"),
        ("[runtime]\npriority = 5\n", "unknown field `priority`"),
    ] {
        let p = parse_str(&(GOOD.to_string() + section)).unwrap_err();
        assert!(p.to_string().contains(message), "{section}: {p}");
    }
}

#[test]
fn metrics_takes_an_address_and_port_and_names_the_key_when_wrong() {
    let c = parse_str(&(GOOD.to_string() + "[metrics]\nlisten = \"[::1]:9187\"\n")).unwrap();
    assert_eq!(c.metrics.map(|m| m.listen), Some("[::1]:9187".parse().unwrap()));
    let p = parse_str(&(GOOD.to_string() + "[metrics]\nlisten = \"localhost:9187\"\n")).unwrap_err();
    assert_eq!(p.0.len(), 1, "{p}");
    assert!(p.to_string().contains("[metrics] listen: \"localhost:9187\" is not an IP address and port"), "{p}");
}

#[test]
fn live_takes_an_address_and_port_and_names_the_key_when_wrong() {
    assert_eq!(parse_str(GOOD).unwrap().live, None);
    let c = parse_str(&(GOOD.to_string() + "[live]\nlisten = \"127.0.0.1:8765\"\n")).unwrap();
    assert_eq!(c.live.map(|l| l.listen), Some("127.0.0.1:8765".parse().unwrap()));
    let env = vec![("REFLEX__LIVE__LISTEN".to_string(), "[::1]:0".to_string())];
    let c = parse(Path::new("/r.toml"), &(GOOD.to_string() + "[live]\nlisten = \"127.0.0.1:8765\"\n"), env).unwrap();
    assert_eq!(c.live.map(|l| l.listen), Some("[::1]:0".parse().unwrap()));
    for (text, says) in [
        ("[live]\nlisten = \"localhost:8765\"\n", "[live] listen: \"localhost:8765\" is not an IP address and port"),
        ("[live]\nlisten = \"127.0.0.1\"\n", "[live] listen: \"127.0.0.1\" is not"),
        ("[live]\nlisten = \"127.0.0.1:8765\"\nport = 1\n", "unknown field `port`"),
        ("[live]\n", "missing field `listen`"),
    ] {
        let p = parse_str(&(GOOD.to_string() + text)).unwrap_err();
        assert_eq!(p.0.len(), 1, "{p}");
        assert!(p.to_string().contains(says), "{text}: {p}");
    }
}
