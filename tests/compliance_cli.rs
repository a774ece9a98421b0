//! `dialler dnd import` and `dialler check` through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
    campaigns: PathBuf,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            campaigns: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns")),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn dialler(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dialler"))
            .args(args)
            .env(
                "DIALLER_DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("d.db").display()),
            )
            .env("DIALLER_CAMPAIGNS", &self.campaigns)
            .env("DIALLER_DND_DIR", self.dir.path().join("dnd"))
            .output()
            .expect("run dialler")
    }

    fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.dialler(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// `check --json`; exit 0 when allowed, 3 when refused.
    fn check(&self, phone: &str, campaign: &str, at: &str) -> serde_json::Value {
        let out = self.dialler(&["check", phone, "--campaign", campaign, "--at", at, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let want = if v["allowed"] == true {
            Some(0)
        } else {
            Some(3)
        };
        assert_eq!(out.status.code(), want, "{v}");
        v
    }
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r.as_str().unwrap_or("?").to_string())
        .collect()
}

// Wednesday 2026-12-02, 15:00 in New York.
const AT: &str = "2026-12-02T20:00:00Z";

#[test]
fn a_us_registry_older_than_31_days_refuses_every_number() {
    let env = Env::new();
    let file = env.write("dnc.txt", "(212) 555-0101\n");
    env.ok_json(&[
        "dnd",
        "import",
        "--campaign",
        "us-home-solar",
        "--registry",
        "national",
        file.to_str().expect("utf8"),
        "--loaded-at",
        "2026-10-01T00:00:00Z",
        "--json",
    ]);
    let v = env.check("212 555 0199", "us-home-solar", AT);
    assert_eq!(reasons(&v), ["dnd_registry_stale"]);
    assert_eq!(v["next_allowed_at"], serde_json::Value::Null);
    // A fresh copy clears it; the listed number stays refused.
    env.ok_json(&[
        "dnd",
        "import",
        "--campaign",
        "us-home-solar",
        "--registry",
        "national",
        file.to_str().expect("utf8"),
        "--loaded-at",
        "2026-11-25T00:00:00Z",
        "--json",
    ]);
    assert_eq!(
        env.check("212 555 0199", "us-home-solar", AT)["allowed"],
        true
    );
    assert_eq!(
        reasons(&env.check("212 555 0101", "us-home-solar", AT)),
        ["dnd_national"]
    );
}

#[test]
fn registry_deltas_add_and_remove_numbers() {
    let env = Env::new();
    let full = env.write("full.txt", "212-555-0101\n212-555-0102\nnot-a-number\n");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--country",
        "US",
        full.to_str().expect("utf8"),
        "--loaded-at",
        "2026-11-25T00:00:00Z",
        "--json",
    ]);
    // A refused line: imported, but the exit status says so.
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            v["entries"].as_u64(),
            v["rejected"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("full.txt:3:"),
        "bad line reported with its number"
    );
    let delta = env.write("delta.txt", "-212-555-0101\n212-555-0103\n");
    let v = env.ok_json(&[
        "dnd",
        "import",
        "--country",
        "US",
        "--delta",
        delta.to_str().expect("utf8"),
        "--loaded-at",
        "2026-11-26T00:00:00Z",
        "--json",
    ]);
    assert_eq!(
        (
            v["added"].as_u64(),
            v["removed"].as_u64(),
            v["total"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    assert_eq!(
        env.check("212 555 0101", "us-home-solar", AT)["allowed"],
        true
    );
    assert_eq!(
        reasons(&env.check("212 555 0103", "us-home-solar", AT)),
        ["dnd_national"]
    );
}

#[test]
fn internal_and_campaign_lists_refuse_their_numbers() {
    let env = Env::new();
    let national = env.write("n.txt", "07700 900009\n");
    env.ok_json(&[
        "dnd",
        "import",
        "--country",
        "GB",
        "--loaded-at",
        "2026-11-30T08:00:00Z",
        national.to_str().expect("utf8"),
        "--json",
    ]);
    let internal = env.write("i.txt", "07700 900001\n");
    env.ok_json(&[
        "dnd",
        "import",
        "--registry",
        "internal",
        "--country",
        "GB",
        internal.to_str().expect("utf8"),
        "--json",
    ]);
    let own = env.write("c.txt", "07700 900002\n");
    env.ok_json(&[
        "dnd",
        "import",
        "--campaign",
        "uk-broadband",
        own.to_str().expect("utf8"),
        "--json",
    ]);
    // Wednesday noon in London, two days after the registry was loaded.
    let at = "2026-12-02T12:00:00Z";
    assert_eq!(
        reasons(&env.check("07700 900001", "uk-broadband", at)),
        ["dnd_internal"]
    );
    assert_eq!(
        reasons(&env.check("07700 900002", "uk-broadband", at)),
        ["dnd_campaign"]
    );
    assert_eq!(
        env.check("07700 900003", "uk-broadband", at)["allowed"],
        true
    );
}

#[test]
fn india_ncpr_preferences_through_the_cli() {
    let env = Env::new();
    let file = env.write("ncpr.csv", "number,preference,days,band\n9876543210,0\n9876543211,1#4\n9876543212,2\n9876543213,1,1-5,10:00-12:00\n9876543214,9\n");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--campaign",
        "in-insurance-renewal",
        "--registry",
        "national",
        "--format",
        "ncpr",
        file.to_str().expect("utf8"),
        "--loaded-at",
        "2026-12-02T00:00:00Z",
        "--json",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ncpr.csv:6: preference"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Wednesday 2026-12-02 13:00 IST.
    let at = "2026-12-02T07:30:00Z";
    assert_eq!(
        reasons(&env.check("9876543210", "in-insurance-renewal", at)),
        ["dnd_national"]
    );
    assert_eq!(
        env.check("+91 98765 43211", "in-insurance-renewal", at)["allowed"],
        true
    );
    assert_eq!(
        reasons(&env.check("9876543212", "in-insurance-renewal", at)),
        ["dnd_national"]
    );
    let v = env.check("9876543213", "in-insurance-renewal", at);
    assert_eq!(reasons(&v), ["outside_hours"]);
    assert_eq!(v["next_allowed_at"], "2026-12-03T04:30:00Z");
    assert_eq!(v["local_time"], "2026-12-02 13:00:00 IST (Wed)");
}

#[test]
fn a_bad_number_is_a_clear_error() {
    let env = Env::new();
    let out = env.dialler(&["check", "555-01", "--campaign", "us-home-solar"]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("invalid_number") && text.contains("not a valid US number length"),
        "{text}"
    );
    // JSON: always a verdict object.
    let out = env.dialler(&["check", "555-01", "--campaign", "us-home-solar", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json verdict");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reasons"], serde_json::json!(["invalid_number"]));
    // An error is said once.
    let out = env.dialler(&["check", "212 555 0101", "--campaign", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let first = err.lines().next().unwrap_or_default().to_string();
    let words: Vec<&str> = first.split(": ").collect();
    let mut seen = std::collections::HashSet::new();
    assert!(words.iter().all(|w| seen.insert(*w)), "{err}");
    // A check that cannot be made is a refusal in JSON too, with why.
    let out = env.dialler(&["check", "212 555 0101", "--campaign", "nope", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json verdict");
    assert_eq!(v["allowed"], false);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("nope")),
        "{v}"
    );
    let out = env.dialler(&[
        "check",
        "212 555 0101",
        "--campaign",
        "us-home-solar",
        "--at",
        "yesterday",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an RFC 3339 time"));
}

#[test]
fn a_stored_lead_with_an_unknown_zone_is_refused() {
    let mut env = Env::new();
    let campaigns = env.dir.path().join("campaigns");
    std::fs::create_dir(&campaigns).expect("mkdir");
    let uk = std::fs::read_to_string(env.campaigns.join("uk-broadband.toml")).expect("read");
    let au = uk
        .replace("name = \"uk-broadband\"", "name = \"au-test\"")
        .replace("profile = \"uk\"", "profile = \"au\"")
        .replace("020 7946 0123", "02 9876 5432")
        .replace("weekdays = \"09:00-20:00\"", "weekdays = \"09:00-19:00\"");
    std::fs::write(campaigns.join("au-test.toml"), au).expect("write");
    env.campaigns = campaigns;
    let leads = env.write("l.csv", "name,phone\nA,(08) 5000 0000\n");
    let imported = env.ok_json(&[
        "leads",
        "import",
        "--campaign",
        "au-test",
        leads.to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(imported["tz_unknown"], 1);
    let reg = env.write("r.txt", "0412 000 009\n");
    env.ok_json(&[
        "dnd",
        "import",
        "--campaign",
        "au-test",
        "--registry",
        "national",
        reg.to_str().expect("utf8"),
        "--loaded-at",
        "2026-11-30T00:00:00Z",
        "--json",
    ]);
    // Wednesday 2026-12-02, midday in every Australian zone.
    let v = env.check("(08) 5000 0000", "au-test", "2026-12-02T03:00:00Z");
    assert_eq!(reasons(&v), ["timezone_unknown"]);
    assert_eq!(v["timezone"], serde_json::json!([]));
    // A Sydney number has a known zone and is allowed.
    let v = env.check("(02) 9876 5000", "au-test", "2026-12-02T03:00:00Z");
    assert_eq!(v["allowed"], true);
}
