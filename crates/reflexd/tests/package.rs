//! The Debian package's description (docs/install.md): every file it installs exists, the
//! packaged config is the repository's default config with only its weights path (and
//! comments) changed, and it loads.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deb_metadata() -> String {
    let manifest = std::fs::read_to_string(crate_dir().join("Cargo.toml")).unwrap();
    let at = manifest.find("[package.metadata.deb]").expect("a [package.metadata.deb] section");
    manifest[at..].to_string()
}

#[test]
fn the_package_installs_reflexd_five_plugins_the_unit_and_the_config() {
    let deb = deb_metadata();
    let mut sources = Vec::new();
    for line in deb.lines().map(str::trim).filter(|l| l.starts_with("[\"")) {
        let fields: Vec<&str> = line.split('"').collect();
        sources.push((fields[1].to_string(), fields[3].to_string()));
    }
    let installs = |dest: &str| sources.iter().any(|(_, d)| d.starts_with(dest));
    assert!(sources.iter().any(|(s, d)| s == "target/release/reflexd" && d == "usr/bin/"), "{sources:?}");
    for plugin in ["conv_standard", "conv_dilated", "conv_depthwise", "conv_grouped", "residual"] {
        let lib = format!("target/release/lib{plugin}.so");
        assert!(sources.iter().any(|(s, d)| *s == lib && d == "usr/lib/reflex/plugins/"), "{plugin}");
        assert!(crate_dir().join("../..").join("plugins").join(plugin).is_dir(), "{plugin} is a workspace plugin");
    }
    assert!(installs("usr/lib/systemd/system/reflexd.service"));
    assert!(installs("etc/reflex/reflex.toml"));
    assert!(deb.contains("conf-files = [\"/etc/reflex/reflex.toml\""));
    // Every source that is not a build output is in the repository.
    for (source, _) in sources.iter().filter(|(s, _)| !s.starts_with("target/") && !s.contains('*')) {
        assert!(crate_dir().join(source).is_file(), "{source} is missing");
    }
    // The plugins are found where they are installed (crates/reflexd/src/model.rs).
    let model = std::fs::read_to_string(crate_dir().join("src/model.rs")).unwrap();
    assert!(model.contains("\"/usr/lib/reflex/plugins\""));
}

#[test]
fn the_packaged_config_is_the_default_config_with_its_weights_beside_it() {
    let code = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    };
    let packaged = crate_dir().join("debian/reflex.toml");
    let (default, ours) = (code(&crate_dir().join("../../config/reflex.toml")), code(&packaged));
    assert_eq!(default.len(), ours.len());
    for (a, b) in default.iter().zip(&ours) {
        if a.starts_with("weights =") {
            assert_eq!(b, "weights = \"weights.safetensors\"");
        } else {
            assert_eq!(a, b);
        }
    }
    let config = reflex_config::load(&packaged).expect("the packaged config loads");
    assert!(config.model.plugin_dir.is_none(), "plugins are found by the search, not named");
}

/// The shipped unit (SPEC §7): systemd waits for `READY=1` and restarts a daemon whose
/// watchdog goes hungry.
#[test]
fn the_unit_waits_for_ready_and_keeps_a_watchdog() {
    let unit = std::fs::read_to_string(crate_dir().join("../../examples/systemd/reflexd.service")).unwrap();
    let keys: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(keys.contains(&"Type=notify"), "{unit}");
    assert!(keys.contains(&"NotifyAccess=main"), "{unit}");
    assert!(keys.contains(&"Restart=on-failure"), "{unit}");
    let watchdog = keys.iter().find_map(|l| l.strip_prefix("WatchdogSec=")).expect("WatchdogSec=");
    assert!(watchdog.trim_end_matches('s').parse::<u32>().is_ok_and(|s| s >= 1), "WatchdogSec={watchdog}");
}

/// `[runtime]` on the robot: the unit grants what SCHED_FIFO and locked memory need, and no
/// other capability.
#[test]
fn the_unit_grants_what_runtime_needs_and_nothing_else() {
    let unit = std::fs::read_to_string(crate_dir().join("../../examples/systemd/reflexd.service")).unwrap();
    let keys: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    for key in [
        "AmbientCapabilities=CAP_SYS_NICE CAP_IPC_LOCK",
        "CapabilityBoundingSet=CAP_SYS_NICE CAP_IPC_LOCK",
        "LimitRTPRIO=99",
        "LimitMEMLOCK=infinity",
        "NoNewPrivileges=yes",
    ] {
        assert!(keys.contains(&key), "{key} missing:\n{unit}");
    }
    assert_eq!(keys.iter().filter(|k| k.starts_with("CapabilityBoundingSet=")).count(), 1, "{unit}");
}

/// `wake_latency_us` on the robot: the package's udev rule lets the unit's group, and only it,
/// write the kernel's PM QoS device.
#[test]
fn the_package_lets_the_units_group_ask_for_quick_wake_ups() {
    let unit = std::fs::read_to_string(crate_dir().join("../../examples/systemd/reflexd.service")).unwrap();
    let group = unit.lines().find_map(|l| l.strip_prefix("Group=")).expect("the unit names its Group=");
    let rules = "examples/systemd/60-reflex-wake-latency.rules";
    let rule = std::fs::read_to_string(crate_dir().join("../..").join(rules)).unwrap();
    let rule: Vec<&str> = rule.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(rule, [format!("KERNEL==\"cpu_dma_latency\", SUBSYSTEM==\"misc\", GROUP=\"{group}\", MODE=\"0660\"")]);
    assert!(deb_metadata().contains(&format!("[\"../../{rules}\", \"usr/lib/udev/rules.d/")));
}
