//! Starting and stopping SIPp for behaviour tests.
//!
//! [`Sipp::uas`] starts SIPp on a free loopback port with one of the
//! scenarios in sipp/, waits until the kernel shows its socket
//! listening, and kills it when dropped. Under CI=true a missing `sipp`
//! fails the test; elsewhere the test is skipped with a message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The scenario file `name` in sipp/.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// True when `sipp` can run. Panics under CI when it cannot; prints why
/// the test is skipped otherwise.
pub fn sipp_available() -> bool {
    let found = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if super::in_ci() {
            panic!("sipp is required under CI=true (Debian package sip-tester)");
        }
        eprintln!("skipping: sipp is not installed (apt-get install sip-tester)");
    }
    found
}

/// A free loopback port for both UDP and TCP (the kernel's choice).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(udp) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = udp.local_addr() else { continue };
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

/// Is something bound to 127.0.0.1:port (UDP) or listening on it (TCP)?
fn listening(port: u16, tcp: bool) -> bool {
    let file = if tcp {
        "/proc/net/tcp"
    } else {
        "/proc/net/udp"
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    let want = format!("0100007F:{port:04X}");
    text.lines().skip(1).any(|l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1);
        let state = f.nth(1);
        local == Some(want.as_str()) && (!tcp || state == Some("0A"))
    })
}

/// A running SIPp, killed on drop.
pub struct Sipp {
    child: Child,
    /// Where it listens for SIP.
    pub addr: SocketAddr,
    /// Its RTP echo port (when started with `rtp_echo`).
    pub media_port: u16,
    /// Its working directory (logs).
    pub dir: tempfile::TempDir,
}

/// How to start a SIPp UAS.
pub struct UasOpts<'a> {
    /// Scenario file name in sipp/.
    pub scenario: &'a str,
    /// Over TCP instead of UDP.
    pub tcp: bool,
    /// `-set` variables.
    pub sets: Vec<(&'a str, String)>,
    /// Echo RTP on the media port.
    pub rtp_echo: bool,
}

impl<'a> UasOpts<'a> {
    /// UDP, no variables, no echo.
    pub fn new(scenario: &'a str) -> UasOpts<'a> {
        UasOpts {
            scenario,
            tcp: false,
            sets: Vec::new(),
            rtp_echo: false,
        }
    }

    /// Adds a `-set NAME VALUE`.
    pub fn set(mut self, name: &'a str, value: impl ToString) -> UasOpts<'a> {
        self.sets.push((name, value.to_string()));
        self
    }
}

/// provider.xml's variables for one outcome mix and times (ms).
pub fn provider(
    p_busy: f64,
    p_noanswer: f64,
    p_reject: f64,
    p_unavailable: f64,
    ring: (u32, u32),
    talk_mean_ms: u32,
) -> UasOpts<'static> {
    UasOpts::new("provider.xml")
        .set("p_busy", p_busy)
        .set("p_noanswer", p_noanswer)
        .set("p_reject", p_reject)
        .set("p_unavailable", p_unavailable)
        .set("p_machine", 0)
        .set("ring_min", ring.0)
        .set("ring_max", ring.1)
        .set("talk_mean", talk_mean_ms)
}

impl Sipp {
    /// Starts a SIPp UAS; `None` when sipp is missing outside CI.
    pub async fn uas(opts: UasOpts<'_>) -> Option<Sipp> {
        if !sipp_available() {
            return None;
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let media_port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cmd = Command::new("sipp");
            cmd.current_dir(dir.path())
                .arg("-sf")
                .arg(scenario(opts.scenario))
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-t", if opts.tcp { "t1" } else { "u1" }])
                .args(["-mp", &media_port.to_string()])
                .args(["-nostdin", "-trace_err", "-max_socket", "5000"])
                .args([
                    "-watchdog_minor_threshold",
                    "2000",
                    "-watchdog_major_threshold",
                    "10000",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if opts.rtp_echo {
                cmd.arg("-rtp_echo");
            }
            for (k, v) in &opts.sets {
                cmd.args(["-set", k, v]);
            }
            let mut child = cmd.spawn().expect("spawn sipp");
            let mut up = false;
            for _ in 0..100 {
                if listening(port, opts.tcp) {
                    up = true;
                    break;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("sipp exited early: {status}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The port may have been another process's socket (a free port
            // can be taken between the probe and SIPp's bind): a SIPp that
            // could not bind exits at once. Try another port then.
            if up {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("sipp exited after start: {status}");
                    continue;
                }
            }
            if up {
                return Some(Sipp {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    media_port,
                    dir,
                });
            }
            let _ = child.kill().await;
        }
        panic!("SIPp did not start: {last_err}");
    }

    /// A `sip:` URI for a callee at this SIPp.
    pub fn uri(&self, user: &str, tcp: bool) -> String {
        if tcp {
            format!("sip:{user}@{};transport=tcp", self.addr)
        } else {
            format!("sip:{user}@{}", self.addr)
        }
    }

    /// The error log SIPp wrote, for failure messages.
    pub fn errors(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("error"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Kills SIPp and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs a SIPp UAC (`sipp -sn uac` by default) against `target` until it
/// exits (at most `limit`); returns whether every call succeeded and its
/// stderr/stdout for messages. Killed if it overruns.
pub async fn run_uac(target: SocketAddr, args: &[&str], limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir.path())
        .arg(target.to_string())
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-nostdin",
            "-trace_err",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn sipp");
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (false, format!("sipp uac ran over {limit:?}")),
    }
}

/// A call to `uri` for the UA tests: caller `dialler`, 15 s ring timeout,
/// no credentials, no talk limit, the provider's own addresses.
pub fn call_params(uri: &str) -> dialler::sip::uac::CallParams {
    dialler::sip::uac::CallParams {
        ids: None,
        target: uri.to_string(),
        from_user: "dialler".into(),
        ring_timeout: dialler::sip::uac::RingTimeout::new(Duration::from_secs(15))
            .expect("15 s is allowed"),
        credentials: None,
        media_addr: "127.0.0.1:40000".parse().expect("an address"),
        max_talk: None,
        display_name: None,
        extra_headers: Vec::new(),
        destinations: Vec::new(),
    }
}
