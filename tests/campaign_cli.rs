//! `dialler campaign validate` and `list` through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

fn dialler(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args(args)
        .current_dir(dir)
        .env_remove("DIALLER_DATABASE_URL")
        .env_remove("DIALLER_CAMPAIGNS")
        .output()
        .expect("run dialler")
}

#[test]
fn the_shipped_campaigns_are_valid() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every campaign file shipped, one per profile at least.
    let mut files: Vec<String> = std::fs::read_dir(repo.join("campaigns"))
        .expect("campaigns folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.strip_prefix(repo).expect("in repo").display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut args = vec!["campaign", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = dialler(repo, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(": ok (").count(), files.len(), "{text}");
    for profile in ["us", "uk", "in", "ca", "au"] {
        assert!(
            files.iter().any(|f| {
                std::fs::read_to_string(repo.join(f))
                    .expect("read")
                    .contains(&format!("profile = \"{profile}\""))
            }),
            "a shipped campaign for {profile}"
        );
    }
}

#[test]
fn validate_reports_every_error_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/campaigns/us-home-solar.toml"
    ))
    .expect("read");
    let bad = src
        .replace("ring_timeout = \"20s\"", "ring_timeout = \"10s\"")
        .replace("target_percent = 2.0", "target_percent = 3.5")
        .replace("saturday = \"10:00-18:00\"", "saturday = \"07:00-18:00\"")
        .replace(
            "password_env = \"US_TRUNK_PASSWORD\"",
            "password_env = \"s3cret!\"",
        );
    std::fs::write(dir.path().join("bad.toml"), &bad).expect("write");
    let out = dialler(dir.path(), &["campaign", "validate", "bad.toml"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line_of = |needle: &str| {
        bad.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .expect("needle")
    };
    for (field, needle) in [
        ("ring_timeout", "ring_timeout ="),
        ("abandonment.target_percent", "target_percent ="),
        ("calling_hours.saturday", "saturday ="),
        ("provider.password_env", "password_env ="),
    ] {
        let want = format!("bad.toml:{}:", line_of(needle));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&want) && l.contains(&format!(": {field}: "))),
            "no {field} error at {want} in:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn list_shows_loaded_campaigns_and_names_invalid_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let campaigns = dir.path().join("campaigns");
    std::fs::create_dir(&campaigns).expect("mkdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns/uk-broadband.toml"),
        campaigns.join("uk.toml"),
    )
    .expect("copy");
    std::fs::write(
        campaigns.join("broken.toml"),
        "name = \"x\"\nprofile = \"fr\"\n",
    )
    .expect("write");
    let out = dialler(dir.path(), &["campaign", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["campaigns"][0]["name"], "uk-broadband");
    assert_eq!(v["campaigns"][0]["leads"], 0);
    let invalid = v["invalid"][0].as_str().expect("one invalid file");
    assert!(
        invalid.contains("broken.toml") && invalid.contains(":2:"),
        "{invalid}"
    );
    // The store was created on first use in the working directory.
    assert!(dir.path().join("dialler.db").exists());
}
