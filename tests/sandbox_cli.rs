//! `dialler sandbox` as a process: SIPp's own UAC (`sipp -sn uac`) passes
//! against it, and our UA gets the outcome it was told to draw.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::sipp::{free_port, run_uac, sipp_available};
use dialler::sip::Target;
use dialler::sip::ua::{Ua, UaConfig};
use dialler::sip::uac::{CallParams, Outcome, RingTimeout};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the sandbox and waits for its "listening" line.
async fn sandbox(args: &[&str]) -> (Child, std::net::SocketAddr) {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args(["sandbox", "--bind", &bind])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dialler sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("sandbox starts")
        .expect("read")
        .expect("a line");
    assert!(line.starts_with("sandbox listening on sip:"), "{line}");
    (child, bind.parse().unwrap())
}

#[tokio::test]
async fn sipp_uac_passes_against_the_sandbox() {
    if !sipp_available() {
        return;
    }
    let (mut child, addr) = sandbox(&[
        "--answer",
        "1",
        "--busy",
        "0",
        "--no-answer",
        "0",
        "--reject",
        "0",
        "--unavailable",
        "0",
        "--ring-min",
        "0.05",
        "--ring-max",
        "0.2",
        "--talk-mean",
        "0",
    ])
    .await;
    let (ok, out) = run_uac(
        addr,
        &[
            "-sn", "uac", "-m", "30", "-r", "15", "-d", "300", "-timeout", "20",
        ],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "sipp uac failed:\n{out}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn sandbox_told_to_be_busy_gives_our_ua_busy() {
    let (mut child, addr) = sandbox(&[
        "--answer",
        "0",
        "--busy",
        "1",
        "--no-answer",
        "0",
        "--reject",
        "0",
        "--unavailable",
        "0",
        "--ring-min",
        "0.01",
        "--ring-max",
        "0.05",
    ])
    .await;
    let target = Target::parse(&format!("sip:+15550009999@{addr}")).unwrap();
    let ua = Ua::start(UaConfig::new(target.addr, target.transport))
        .await
        .unwrap();
    for _ in 0..3 {
        let call = ua
            .call(CallParams {
                ids: None,
                target: target.uri.clone(),
                from_user: "d".into(),
                ring_timeout: RingTimeout::default(),
                credentials: None,
                media_addr: "127.0.0.1:4000".parse().unwrap(),
                max_talk: None,
                display_name: None,
                extra_headers: Vec::new(),
                destinations: Vec::new(),
            })
            .await
            .unwrap();
        let s = tokio::time::timeout(Duration::from_secs(10), call.ended())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.outcome, Outcome::Busy);
    }
    ua.shutdown().await;
    let _ = child.kill().await;
}

#[tokio::test]
async fn sandbox_refuses_all_zero_weights() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialler"))
        .args([
            "sandbox",
            "--bind",
            "127.0.0.1:0",
            "--answer",
            "0",
            "--busy",
            "0",
            "--no-answer",
            "0",
            "--reject",
            "0",
            "--unavailable",
            "0",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weights"));
}
