//! `dialler simulate` through the binary: sweeps, plots, JSON, and clear
//! errors for bad options.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Command, Output};

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dialler"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("simulate")
        .args(["--campaign", "campaigns/uk-broadband.toml", "--days", "1"])
        .args(args)
        .output()
        .expect("run dialler")
}

#[test]
fn a_sweep_prints_a_row_per_point_and_draws_the_frontier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("frontier.svg");
    let out = simulate(&[
        "--agents",
        "5",
        "--strategy",
        "predictive,ratio:1.5",
        "--sweep",
        "target=1..3:3",
        "--json",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let rows = doc["rows"].as_array().expect("rows");
    // Predictive at each of 3 targets; the ratio, which ignores the
    // target, once.
    assert_eq!(rows.len(), 4, "{doc}");
    assert_eq!(doc["best_ratio"]["strategy"], "ratio:1.5");
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        text.starts_with("<svg") && text.contains("predictive"),
        "{}",
        &text[..200.min(text.len())]
    );
}

#[test]
fn a_single_run_plots_its_time_series_and_repeats_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.svg");
    let b = dir.path().join("b.svg");
    let run = |p: &std::path::Path| {
        let out = simulate(&["--agents", "5", "--plot", p.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(run(&a), run(&b), "same seed, same table");
    let (a, b) = (
        std::fs::read(&a).expect("a.svg"),
        std::fs::read(&b).expect("b.svg"),
    );
    assert_eq!(a, b, "same seed, same plot");
    assert!(String::from_utf8_lossy(&a).contains("dial level"));
}

#[test]
fn bad_sweeps_and_strategies_are_refused_with_the_reason() {
    let out = simulate(&["--sweep", "speed=1..2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown parameter"), "{err}");
    let out = simulate(&["--strategy", "ratio:0.2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ratio:0.2"), "{err}");
}

/// Numbers out of range on the command line are refused by name with
/// exit 2 before anything runs: no panic on a seed that overflows, on a
/// negative or infinite duration, and no silent 0-as-1.
#[test]
fn out_of_range_numbers_are_refused_before_anything_runs() {
    let bin = env!("CARGO_BIN_EXE_dialler");
    let runs: [&[&str]; 8] = [
        &[
            "simulate",
            "--campaign",
            "uk-broadband",
            "--seed",
            "18446744073709551615",
        ],
        &["simulate", "--campaign", "uk-broadband", "--seeds", "0"],
        &["demo", "--minutes=-1"],
        &["demo", "--minutes", "inf"],
        &["demo", "--status-every", "0"],
        &["run", "--grace", "nan"],
        &["sip", "call", "sip:1@127.0.0.1:9", "--play", "1e12"],
        &[
            "sip",
            "load",
            "sip:1@127.0.0.1:9",
            "--cps",
            "0",
            "--calls",
            "1",
        ],
    ];
    for args in runs {
        let out = Command::new(bin)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .expect("run dialler");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("invalid value"), "{args:?}: {err}");
    }
}

/// Without `--strategy`, the campaign file's own strategy is simulated: a
/// campaign is tuned as it will run.
#[test]
fn the_campaign_files_strategy_is_simulated_unless_another_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/campaigns/uk-broadband.toml"
    ))
    .expect("campaign")
    .replace("strategy = \"predictive\"", "strategy = \"ratio:1.5\"");
    let file = dir.path().join("uk-ratio.toml");
    std::fs::write(&file, text).expect("write");
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dialler"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("simulate")
            .args(["--campaign", file.to_str().expect("utf-8 path")])
            .args(["--days", "1", "--agents", "5", "--json"])
            .args(extra)
            .output()
            .expect("run dialler");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        doc.to_string()
    };
    assert!(run(&[]).contains("\"strategy\":\"ratio:1.5\""));
    assert!(run(&["--strategy", "progressive"]).contains("\"strategy\":\"progressive\""));
}
