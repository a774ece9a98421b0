//! Lead import end to end, through the `dialler` binary and a SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let campaigns = dir.path().join("campaigns");
        std::fs::create_dir(&campaigns).expect("mkdir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns");
        for name in ["in-insurance-renewal", "us-home-solar", "uk-broadband"] {
            std::fs::copy(
                repo.join(format!("{name}.toml")),
                campaigns.join(format!("{name}.toml")),
            )
            .expect("copy");
        }
        // An Australian campaign, made from the UK one.
        let uk = std::fs::read_to_string(repo.join("uk-broadband.toml")).expect("read");
        let au = uk
            .replace("name = \"uk-broadband\"", "name = \"au-test\"")
            .replace("profile = \"uk\"", "profile = \"au\"")
            .replace(
                "caller_id = \"020 7946 0123\"",
                "caller_id = \"02 9876 5432\"",
            )
            .replace("weekdays = \"09:00-20:00\"", "weekdays = \"09:00-19:00\"");
        std::fs::write(campaigns.join("au-test.toml"), au).expect("write");
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write csv");
        p
    }

    fn dialler(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dialler"))
            .args(args)
            .env(
                "DIALLER_DATABASE_URL",
                format!("sqlite://{}", self.path("d.db").display()),
            )
            .env("DIALLER_CAMPAIGNS", self.path("campaigns"))
            .env_remove("CI")
            .output()
            .expect("run dialler")
    }

    fn import_json(&self, campaign: &str, file: &Path, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "leads",
            "import",
            "--campaign",
            campaign,
            file.to_str().expect("utf8 path"),
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.dialler(&args);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
    }

    /// `leads import` of `file` into `campaign` with `extra`, which must
    /// fail: its standard error.
    fn import_refused(&self, campaign: &str, file: &Path, extra: &[&str]) -> String {
        let mut args = vec![
            "leads",
            "import",
            "--campaign",
            campaign,
            file.to_str().expect("utf8 path"),
        ];
        args.extend_from_slice(extra);
        let out = self.dialler(&args);
        assert!(
            !out.status.success(),
            "import of {} succeeded",
            file.display()
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn counts(v: &serde_json::Value) -> [u64; 5] {
    ["rows", "imported", "duplicates", "rejected", "tz_unknown"]
        .map(|k| v[k].as_u64().unwrap_or(u64::MAX))
}

#[test]
fn bom_crlf_and_quoted_newlines_import_and_keep_line_numbers() {
    let env = Env::new();
    let csv = "\u{feff}name,phone,notes\r\n\
               Asha,98765 43210,\"likes, commas\"\r\n\
               Ravi,+91 91234 56789,\"two\r\nlines\"\r\n\
               Bad,12345,x\r\n\
               Meena,0 99887 76655,plain\r\n";
    let file = env.write("in.csv", csv.as_bytes());
    let rejects = env.path("rejects.csv");
    let v = env.import_json(
        "in-insurance-renewal",
        &file,
        &["--rejects", rejects.to_str().expect("utf8")],
    );
    assert_eq!(counts(&v), [4, 3, 0, 1, 0]);
    let text = std::fs::read_to_string(&rejects).expect("rejects written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("line,field,reason,name,phone,notes"));
    // The quoted field spans lines 3 and 4, so the bad row is on line 5.
    assert_eq!(
        lines.next(),
        Some("5,phone,5 digits is not a valid IN number length,Bad,12345,x")
    );
    assert_eq!(lines.next(), None);

    // BOM stripped from the first header, fields kept whole.
    let out = env.dialler(&[
        "leads",
        "stats",
        "--campaign",
        "in-insurance-renewal",
        "--json",
    ]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(stats["by_status"]["new"], 3);
}

#[test]
fn leads_go_into_the_list_named_and_a_bad_name_is_refused() {
    let env = Env::new();
    let a = env.write(
        "a.csv",
        b"name,phone\nAsha,98765 43210\nRavi,+91 91234 56789\n",
    );
    let b = env.write("b.csv", b"name,phone\nMeena,0 99887 76655\n");
    let v = env.import_json("in-insurance-renewal", &a, &["--list", "march-renewals"]);
    assert_eq!(counts(&v), [2, 2, 0, 0, 0]);
    let v = env.import_json("in-insurance-renewal", &b, &[]);
    assert_eq!(counts(&v), [1, 1, 0, 0, 0]);
    let out = env.dialler(&[
        "leads",
        "stats",
        "--campaign",
        "in-insurance-renewal",
        "--json",
    ]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let lists: Vec<(String, i64)> = stats["lists"]
        .as_array()
        .expect("lists")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap_or("").to_string(),
                l["leads"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        lists,
        [
            ("default".to_string(), 1),
            ("march-renewals".to_string(), 2)
        ],
        "{stats}"
    );
    let err = env.import_refused("in-insurance-renewal", &b, &["--list", "no spaces"]);
    assert!(err.contains("--list") && err.contains("no spaces"), "{err}");
}

#[test]
fn importing_the_same_file_twice_adds_nothing() {
    let env = Env::new();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/leads/us-home-solar.csv");
    let first = env.import_json("us-home-solar", &sample, &[]);
    let [rows, imported, dupes, rejected, _] = counts(&first);
    assert_eq!(rows, imported + dupes + rejected);
    assert!(imported > 900, "{first}");
    let second = env.import_json("us-home-solar", &sample, &[]);
    assert_eq!(counts(&second), [rows, 0, imported + dupes, rejected, 0]);
}

#[test]
fn bad_rows_are_rejected_and_good_rows_still_import() {
    let env = Env::new();
    let mut bytes = b"first,last,phone\n".to_vec();
    bytes.extend_from_slice(b"Ann,Lee,(212) 555-0101\n"); // line 2, good
    bytes.extend_from_slice(b"Bo,(212) 555-0102\n"); // line 3, missing a column
    bytes.extend_from_slice(b"C\xe9line,Roy,(305) 555-0103\n"); // line 4, Latin-1
    bytes.extend_from_slice(b"Dee,Fox,\n"); // line 5, empty phone
    bytes.extend_from_slice(b"Eve,Ng,+44 20 7946 0018\n"); // line 6, foreign
    bytes.extend_from_slice(b"Fay,Oz,212-555-0101\n"); // line 7, duplicate of line 2
    bytes.extend_from_slice(b"Gus,Poe,1 404 555 0107\n"); // line 8, good
    let file = env.write("us.csv", &bytes);
    let rejects = env.path("r.csv");
    let v = env.import_json(
        "us-home-solar",
        &file,
        &["--rejects", rejects.to_str().expect("utf8")],
    );
    assert_eq!(counts(&v), [7, 2, 1, 4, 0]);
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&rejects)
        .expect("rejects csv");
    let got: Vec<(String, String, String)> = r
        .records()
        .map(|rec| {
            let rec = rec.expect("record");
            (rec[0].to_string(), rec[1].to_string(), rec[2].to_string())
        })
        .collect();
    assert_eq!(
        got[0],
        (
            "3".into(),
            "row".into(),
            "expected 3 columns, found 2".into()
        )
    );
    assert_eq!((got[1].0.as_str(), got[1].1.as_str()), ("4", "first"));
    assert!(got[1].2.contains("invalid UTF-8"), "{:?}", got[1]);
    assert_eq!(
        got[2],
        ("5".into(), "phone".into(), "empty phone number".into())
    );
    assert_eq!((got[3].0.as_str(), got[3].1.as_str()), ("6", "phone"));
    assert!(got[3].2.starts_with("out of country"), "{:?}", got[3]);
    assert_eq!(got.len(), 4);
}

#[test]
fn unknown_time_zones_are_stored_but_marked() {
    let env = Env::new();
    // 08 5xxx xxxx: libphonenumber has no zone for this Australian range, and
    // Australia spans several zones, so the lead cannot be timed.
    let file = env.write("au.csv", b"name,phone,timezone\nA,(08) 5000 0000,\nB,(02) 9876 5432,\nC,0412 345 678,Australia/Perth\n");
    let v = env.import_json("au-test", &file, &[]);
    assert_eq!(counts(&v), [3, 3, 0, 0, 1]);
    let out = env.dialler(&["leads", "stats", "--campaign", "au-test", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            stats["by_status"]["new"].as_i64(),
            stats["by_status"]["tz_unknown"].as_i64()
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn a_file_without_a_phone_column_is_refused_with_a_hint() {
    let env = Env::new();
    let file = env.write("x.csv", b"name,email\nA,a@example.com\n");
    let err = env.import_refused("uk-broadband", &file, &[]);
    assert!(
        err.contains("no phone column") && err.contains("--phone-column"),
        "{err}"
    );
    // Naming the column works.
    let file = env.write("y.csv", b"name,landline\nA,020 7946 0999\n");
    let v = env.import_json("uk-broadband", &file, &["--phone-column", "landline"]);
    assert_eq!(counts(&v), [1, 1, 0, 0, 0]);
}

#[test]
fn an_unknown_campaign_is_an_error() {
    let env = Env::new();
    let file = env.write("x.csv", b"phone\n9876543210\n");
    let err = env.import_refused("nope", &file, &[]);
    assert!(err.contains("no campaign named \"nope\""), "{err}");
}

#[test]
fn real_files_semicolons_tabs_pipes_latin1_and_unicode_digits() {
    let env = Env::new();
    // Semicolon (a European spreadsheet), tab and pipe, found from the header.
    for (name, sep) in [("semi.csv", ";"), ("tab.tsv", "\t"), ("pipe.txt", "|")] {
        let text = format!(
            "name{sep}phone{sep}city\nAsha{sep}98765 43210{sep}Pune, MH\nRavi{sep}98765 43211{sep}Goa\n"
        );
        let file = env.write(name, text.as_bytes());
        let v = env.import_json("in-insurance-renewal", &file, &[]);
        assert_eq!(v["rejected"], 0, "{name}: {v}");
        assert_eq!(v["rows"], 2, "{name}: {v}");
    }
    // Latin-1 (Windows-1252) bytes: "José" and "Müller" decode, not reject.
    let latin = b"name,phone\nJos\xe9,98765 43212\nM\xfcller,98765 43213\n";
    let file = env.write("latin.csv", latin);
    let v = env.import_json("in-insurance-renewal", &file, &["--encoding", "latin-1"]);
    assert_eq!(
        (v["imported"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
    // Without --encoding the same bytes are rows refused as invalid UTF-8.
    let file = env.write("latin2.csv", b"name,phone\nJos\xe9,98765 43214\n");
    let v = env.import_json("in-insurance-renewal", &file, &[]);
    assert_eq!(v["rejected"], 1, "{v}");
    // Devanagari and fullwidth digits, a non-breaking space.
    let file = env.write(
        "digits.csv",
        "name,phone\nA,\u{096F}\u{096E}\u{096D}\u{096C}\u{096B}\u{096A}\u{0969}\u{0968}\u{0967}\u{0966}\nB,\u{FF19}\u{FF18}\u{FF17}\u{FF16}\u{FF15}\u{00A0}\u{FF14}\u{FF13}\u{FF12}\u{FF11}\u{FF19}\n".as_bytes(),
    );
    let v = env.import_json("in-insurance-renewal", &file, &[]);
    assert_eq!(
        (v["rows"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(0)),
        "{v}"
    );
}

#[test]
fn duplicate_phone_headers_and_unterminated_quotes_are_reported() {
    let env = Env::new();
    let file = env.write("dup.csv", b"phone,name,Phone\n98765 43210,A,98765 43211\n");
    let err = env.import_refused("in-insurance-renewal", &file, &[]);
    assert!(
        err.contains("appears twice") && err.contains("columns 1 and 3"),
        "{err}"
    );
    // Any other column twice too: one of its two values would be lost.
    let file = env.write(
        "dup2.csv",
        b"phone,email,name,email \n98765 43210,a@x.in,A,b@x.in\n",
    );
    let err = env.import_refused("in-insurance-renewal", &file, &[]);
    assert!(
        err.contains("dup2.csv:1: the column \"email\" appears twice (columns 2 and 4)"),
        "{err}"
    );
    let rejects = env.path("rejects.csv");
    let file = env.write(
        "quote.csv",
        b"name,phone\nA,98765 43210\n\"B,98765 43211\nC,98765 43212\n",
    );
    let v = env.import_json(
        "in-insurance-renewal",
        &file,
        &["--rejects", rejects.to_str().expect("utf8")],
    );
    assert_eq!(
        (v["imported"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    let text = std::fs::read_to_string(&rejects).expect("rejects");
    assert!(
        text.contains("unterminated quote") && text.contains("line 3"),
        "{text}"
    );
}
