//! A short load run against SIPp's provider.xml: the outcome counts match
//! the rates SIPp was given, nothing else goes wrong, and the pacer holds
//! the asked rate. Plus `dialler sip call --json` end to end.

mod common;

use std::time::Duration;

use common::sipp::{Sipp, provider};
use dialler::sip::Target;
use dialler::sip::load::{LoadConfig, run};
use dialler::sip::uac::{Outcome, RingTimeout};

#[tokio::test]
async fn short_load_run_counts_the_outcomes_sipp_drew() {
    let (busy, noans, reject, unavail) = (0.2, 0.1, 0.1, 0.1);
    let Some(sipp) = Sipp::uas(provider(busy, noans, reject, unavail, (100, 600), 500)).await
    else {
        return;
    };
    let calls = 300u64;
    let report = run(LoadConfig {
        target: Target::parse(&sipp.uri("+15550000001", false)).unwrap(),
        cps: 60,
        calls,
        max_channels: 1000,
        ring_timeout: RingTimeout::new(Duration::from_secs(15)).unwrap(),
        max_talk: None,
        credentials: None,
        from_user: "load".into(),
    })
    .await
    .unwrap();
    let n = |o| report.outcomes.get(&o).copied().unwrap_or(0);
    let total: u64 = report.outcomes.values().sum();
    assert_eq!(total, calls, "{report:?}");
    for bad in [
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Cancelled,
        Outcome::NotFound,
    ] {
        assert_eq!(n(bad), 0, "{bad:?} in {report:?}\n{}", sipp.errors());
    }
    for (o, p) in [
        (Outcome::Busy, busy),
        (Outcome::NoAnswer, noans),
        (Outcome::Rejected, reject),
        (Outcome::Unavailable, unavail),
        (Outcome::Answered, 1.0 - busy - noans - reject - unavail),
    ] {
        let want = p * calls as f64;
        let slack = 4.0 * (calls as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (n(o) as f64 - want).abs() <= slack,
            "{o:?}: {} vs {want:.0}±{slack:.0}",
            n(o)
        );
    }
    assert!(
        (report.achieved_cps - 60.0).abs() < 6.0,
        "cps {}",
        report.achieved_cps
    );
    assert_eq!(report.backoffs, 0);
    assert_eq!(report.ack_ms.n as u64, n(Outcome::Answered));
    assert!(report.peak_in_flight > 30, "{}", report.peak_in_flight);
    sipp.stop().await;
}

#[tokio::test]
async fn sip_call_json_reports_outcome_and_codes() {
    let Some(sipp) = Sipp::uas(provider(0.0, 0.0, 1.0, 0.0, (50, 100), 500)).await else {
        return;
    };
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args(["sip", "call", &sipp.uri("+15550000002", false), "--json"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(v["final_code"], 603);
    assert_eq!(v["codes"], serde_json::json!([100, 180, 603]));
    sipp.stop().await;
}

#[tokio::test]
async fn sip_call_refuses_a_ring_timeout_under_15_seconds() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args(["sip", "call", "sip:1@127.0.0.1:5", "--ring-timeout", "10"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("15 s"));
}
