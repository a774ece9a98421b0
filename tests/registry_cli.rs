//! Registry imports fail closed, through the binary: bad data only adds
//! protection, a full import cannot silently wipe or age a registry, a
//! person's own opt-out or erasure is undone only deliberately.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

const CAMPAIGNS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/campaigns");
// Wednesday 2026-12-02, 15:00 in New York.
const AT: &str = "2026-12-02T20:00:00Z";

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf8").to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dialler(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dialler"))
            .args(args)
            .env(
                "DIALLER_DATABASE_URL",
                format!("sqlite://{}", self.dir.path().join("d.db").display()),
            )
            .env("DIALLER_CAMPAIGNS", CAMPAIGNS)
            .env("DIALLER_DND_DIR", self.dir.path().join("dnd"))
            .output()
            .expect("run dialler")
    }

    /// `dnd import --country US` of `file` loaded at `loaded`, with extra
    /// arguments; the exit code and the JSON report (if any).
    fn import(
        &self,
        file: &str,
        loaded: &str,
        extra: &[&str],
    ) -> (Option<i32>, serde_json::Value, String) {
        let mut args = vec![
            "dnd",
            "import",
            "--country",
            "US",
            file,
            "--loaded-at",
            loaded,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.dialler(&args);
        let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code(),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn reasons(&self, phone: &str, campaign: &str) -> Vec<String> {
        let out = self.dialler(&["check", phone, "--campaign", campaign, "--at", AT, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .map(|r| r.as_str().unwrap_or("?").to_string())
            .collect()
    }
}

fn numbers(from: u32, n: u32) -> String {
    (from..from + n)
        .map(|i| format!("212-555-{i:04}\n"))
        .collect()
}

#[test]
fn a_full_import_that_would_wipe_or_corrupt_the_registry_is_refused() {
    let env = Env::new();
    let base = env.write("base.txt", &numbers(100, 100));
    let (code, v, _) = env.import(&base, "2026-11-20T00:00:00Z", &[]);
    assert_eq!((code, v["total"].as_u64()), (Some(0), Some(100)));

    let empty = env.write("empty.txt", "");
    let bad = env.write("bad.txt", "hello\nworld\n");
    let wrong_country = env.write("gb.txt", "+44 20 7946 0018\n+44 20 7946 0019\n");
    let shrunk = env.write("shrunk.txt", &numbers(100, 90));
    for (file, says) in [
        (&empty, "no valid entries"),
        (&bad, "no valid entries"),
        (&wrong_country, "another country"),
        (&shrunk, "would drop 10 of the registry's 100 numbers"),
    ] {
        let (code, _, err) = env.import(file, "2026-11-25T00:00:00Z", &[]);
        assert_eq!(code, Some(1), "{file}: {err}");
        assert!(
            err.contains(says) && err.contains("--force"),
            "{file}: {err}"
        );
        // Nothing changed: every number still refused, the age unchanged.
        assert_eq!(
            env.reasons("212-555-0150", "us-home-solar"),
            ["dnd_national"]
        );
    }
    // A refused import still says which lines it refused, in the rejects
    // file and on stderr.
    let rejects = env.dir.path().join("rejects.csv");
    let rejects_arg = rejects.display().to_string();
    let (code, _, err) = env.import(&bad, "2026-11-25T00:00:00Z", &["--rejects", &rejects_arg]);
    assert_eq!(code, Some(1), "{err}");
    let text = std::fs::read_to_string(&rejects).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().nth(1).is_some_and(|l| l.starts_with("1,")),
        "{text}"
    );
    assert!(err.contains(&format!("{bad}:2:")), "{err}");
    // An older copy than the registry's is refused too.
    let (code, _, err) = env.import(&base, "2026-11-10T00:00:00Z", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("before the registry it would replace"),
        "{err}"
    );
    // Deliberately: --force imports the shrunk file, and the record says so.
    let (code, v, _) = env.import(&shrunk, "2026-11-25T00:00:00Z", &["--force"]);
    assert_eq!(
        (code, v["total"].as_u64(), v["removed"].as_u64()),
        (Some(0), Some(90), Some(10))
    );
    let h = env.dialler(&["dnd", "history", "--json"]);
    let h: serde_json::Value = serde_json::from_slice(&h.stdout).expect("json");
    let imports = h["imports"].as_array().expect("imports");
    assert_eq!(
        imports.len(),
        2,
        "refused imports change nothing and are not recorded: {h}"
    );
    assert_eq!(imports[1]["forced"], true);
    assert_eq!(imports[1]["kind"], "full");
    assert_eq!(imports[1]["target"], "national:US");
    assert_eq!(imports[0]["sha256"].as_str().map(str::len), Some(64));
    // The same copy again adds nothing, and says so; a copy with five new
    // numbers adds five.
    let (code, v, _) = env.import(&shrunk, "2026-11-26T00:00:00Z", &[]);
    assert_eq!(
        (code, v["added"].as_u64(), v["removed"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    let grown = env.write("grown.txt", &numbers(100, 95));
    let (code, v, _) = env.import(&grown, "2026-11-27T00:00:00Z", &[]);
    assert_eq!(
        (code, v["added"].as_u64(), v["total"].as_u64()),
        (Some(0), Some(5), Some(95))
    );
    // --max-drop-percent is a share of 0-100.
    for bad in ["inf", "NaN", "-5", "101"] {
        let (code, _, err) =
            env.import(&grown, "2026-11-28T00:00:00Z", &["--max-drop-percent", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
    }
}

#[test]
fn bad_lines_keep_their_numbers_blocked_and_are_all_reported() {
    let env = Env::new();
    let file = env.write(
        "ncpr.csv",
        "9876543210,1#4,1-5,25:00-26:00\n9876543211,9\n9876543212,1,1-5,10:00-12:00,A,junk\nnot-a-number\n9876543213,0\n",
    );
    let rejects = env.path("rejects.csv");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--country",
        "IN",
        "--format",
        "ncpr",
        &file,
        "--loaded-at",
        "2026-12-02T00:00:00Z",
        "--rejects",
        rejects.to_str().expect("utf8"),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["rejected"].as_u64(), v["kept_blocked"].as_u64()),
        (Some(4), Some(3))
    );
    let text = std::fs::read_to_string(&rejects).expect("rejects");
    assert_eq!(text.lines().count(), 5, "{text}");
    for line in ["\n1,", "\n2,", "\n3,", "\n4,"] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    // Wednesday 13:00 in India: each number with bad fields is blocked
    // for the insurer's category, not opened to it.
    let at = "2026-12-02T07:30:00Z";
    for n in ["9876543210", "9876543211", "9876543212", "9876543213"] {
        let out = env.dialler(&[
            "check",
            n,
            "--campaign",
            "in-insurance-renewal",
            "--at",
            at,
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["reasons"], serde_json::json!(["dnd_national"]), "{n}");
    }
    // A known number of rejects can be accepted.
    let out = env.dialler(&[
        "dnd",
        "import",
        "--country",
        "IN",
        "--format",
        "ncpr",
        "--delta",
        &file,
        "--loaded-at",
        "2026-12-02T00:00:00Z",
        "--accept-rejects",
        "4",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn deltas_do_not_make_a_registry_fresh_and_the_future_is_refused() {
    let env = Env::new();
    let base = env.write("base.txt", &numbers(100, 10));
    env.import(&base, "2026-10-01T00:00:00Z", &[]);
    assert_eq!(
        env.reasons("212-555-0500", "us-home-solar"),
        ["dnd_registry_stale"]
    );
    let delta = env.write("delta.txt", "212-555-0999\n");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--country",
        "US",
        "--delta",
        &delta,
        "--loaded-at",
        "2026-11-29T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(0));
    // Still the age of the last full copy.
    assert_eq!(
        env.reasons("212-555-0500", "us-home-solar"),
        ["dnd_registry_stale"]
    );
    let (code, _, err) = env.import(&base, "2099-01-01T00:00:00Z", &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("in the future"), "{err}");
    // A removal line in a full file removes nothing and is refused.
    let with_removal = env.write(
        "rm.txt",
        &format!("{}212-555-0999\n-212-555-0100\n", numbers(100, 10)),
    );
    let (code, v, err) = env.import(&with_removal, "2026-11-25T00:00:00Z", &[]);
    assert_eq!((code, v["total"].as_u64()), (Some(4), Some(11)), "{err}");
    assert!(err.contains("only with --delta"), "{err}");
}

#[test]
fn opt_outs_and_erasures_are_undone_only_deliberately() {
    let env = Env::new();
    let national = env.write("n.txt", "212-555-0001\n");
    env.import(&national, "2026-11-25T00:00:00Z", &[]);
    // An erasure: the number is refused in every campaign, and a lead file
    // naming it again is refused at import.
    let out = env.dialler(&["leads", "erase", "+1 212 555 0123"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.reasons("212 555 0123", "us-home-solar"), ["suppressed"]);
    let leads = env.write(
        "l.csv",
        "name,phone\nA,212 555 0123\nB,212 555 0124\nC,212-555-0001\n",
    );
    let out = env.dialler(&[
        "leads",
        "import",
        "--campaign",
        "us-home-solar",
        &leads,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["imported"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["scrub"]["suppressed"], 1);
    assert_eq!(v["scrub"]["national"], 1);
    // A delta's removal does not take the person back.
    let internal = env.write("i.txt", "212 555 0124\n");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--registry",
        "internal",
        "--country",
        "US",
        &internal,
    ]);
    assert!(out.status.success());
    let out = env.dialler(&["leads", "erase", "+1 212 555 0124"]);
    assert!(out.status.success());
    let rm = env.write("rm.txt", "-212 555 0124\n-212 555 0123\n");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--registry",
        "internal",
        "--country",
        "US",
        "--delta",
        &rm,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the erased number is on no list by number"
    );
    assert_eq!(env.reasons("212 555 0124", "us-home-solar"), ["suppressed"]);
    // The deliberate act: a reason, and the audit log records it.
    let out = env.dialler(&["dnd", "remove", "+1 212 555 0123", "--reason", "x"]);
    assert!(!out.status.success(), "a reason is required");
    let out = env.dialler(&[
        "dnd",
        "remove",
        "+1 212 555 0123",
        "--reason",
        "erased in error, ticket 42",
        "--by",
        "dpo",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.reasons("212 555 0123", "us-home-solar").is_empty());
}

/// Each profile's sample registry (the demo loads it) is a file of its own
/// country: every line reads, none of another country.
#[test]
fn every_sample_registry_is_of_its_own_country() {
    for p in dialler::profile::Profile::ALL {
        let sample = p.rules().sample();
        let path = std::path::Path::new(CAMPAIGNS)
            .join("dnd")
            .join(sample.registry_file);
        let file = std::fs::File::open(&path).expect("sample registry");
        let parsed =
            dialler::compliance::dnd::parse(file, sample.registry_format, p.country(), false)
                .expect("read");
        assert!(parsed.bad.is_empty(), "{p:?}: {:?}", parsed.bad);
        assert!(parsed.entries.len() >= 20, "{p:?}");
    }
}

/// A person's own opt-out (a `dnc` disposition's entry) named by a delta's
/// removal: the number stays listed, and the rejects file says which line,
/// why, and what the line said.
#[test]
fn a_removal_of_an_opt_out_stays_listed_and_its_line_is_in_the_rejects() {
    let env = Env::new();
    let url = format!("sqlite://{}", env.path("d.db").display());
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let store = dialler::store::Store::open(&url).await.expect("store");
            store
                .dnc_add(
                    dialler::store::SCOPE_INTERNAL,
                    &["+12125550125".to_string()],
                    0,
                    "disposition",
                )
                .await
                .expect("opt-out");
            store.close().await;
        });
    let rm = env.write("rm.txt", "# delta\n-212 555 0125\n-212 555 0199\n");
    let rejects = env.path("rejects.csv");
    let out = env.dialler(&[
        "dnd",
        "import",
        "--registry",
        "internal",
        "--country",
        "US",
        "--delta",
        &rm,
        "--rejects",
        rejects.to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reasons = env.reasons("212 555 0125", "us-home-solar");
    assert!(reasons.iter().any(|r| r == "dnd_internal"), "{reasons:?}");
    let text = std::fs::read_to_string(&rejects).expect("rejects");
    let line = text
        .lines()
        .find(|l| l.starts_with("2,"))
        .unwrap_or_else(|| panic!("line 2 not in {text}"));
    assert!(line.contains("person's own request"), "{line}");
    assert!(line.ends_with("-212 555 0125"), "{line}");
}
