//! SIPp as the provider sandbox: starts `sipp` (Debian package
//! `sip-tester`) on loopback as a UAS running `sipp/provider.xml`, where
//! every INVITE draws an outcome (busy, no answer, reject, unavailable,
//! answering machine or answer after a random ring, then a random talk
//! time), and reads back
//! the INVITEs it received from its message log.
//!
//! `dialler demo --provider sipp` dials through this; the tests check on
//! SIPp's side which numbers were ever invited.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The provider scenario, shipped inside the binary so `dialler demo
/// --provider sipp` needs nothing but `sipp` on the PATH.
pub const PROVIDER_XML: &str = include_str!("../../sipp/provider.xml");

/// Errors starting SIPp.
#[derive(Debug, thiserror::Error)]
pub enum SippError {
    /// `sipp` is not on the PATH.
    #[error("sipp is not installed (Debian package sip-tester): {0}")]
    NotInstalled(std::io::Error),
    /// Writing the scenario or reading the log.
    #[error("sipp files in {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// SIPp exited or never opened its port.
    #[error("sipp did not start: {0}")]
    DidNotStart(String),
}

/// What the provider draws for each INVITE. Answer takes the share the
/// others leave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderRates {
    /// 486 Busy Here.
    pub busy: f64,
    /// Rings until cancelled (then 487).
    pub no_answer: f64,
    /// 603 Decline.
    pub reject: f64,
    /// 503 Service Unavailable.
    pub unavailable: f64,
    /// 200 OK with `X-AMD: machine` (an answering machine, as detected by
    /// the provider).
    pub machine: f64,
    /// Uniform ring time before the final response, ms.
    pub ring_ms: (u32, u32),
    /// Mean (exponential) talk time after the ACK before SIPp hangs up,
    /// ms; the dialler's BYE ends the call earlier.
    pub talk_mean_ms: u32,
}

/// A running SIPp provider. Killed when dropped.
#[derive(Debug)]
pub struct SippProvider {
    child: tokio::process::Child,
    addr: SocketAddr,
    message_log: PathBuf,
}

/// One INVITE SIPp received (retransmissions folded by Call-ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The Call-ID.
    pub call_id: String,
    /// The Request-URI's user part (the dialled number).
    pub user: String,
}

fn free_udp_port() -> Result<u16, SippError> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| SippError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source: e,
        })
}

/// True when something holds UDP `port` on loopback.
fn udp_taken(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

impl SippProvider {
    /// Starts SIPp as the provider with `rates`, its scenario, error and
    /// message logs in `dir` (created). Waits until its port is open.
    pub async fn start(rates: ProviderRates, dir: &Path) -> Result<SippProvider, SippError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SippError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // SIPp runs in `dir`: a relative path (the demo's default
        // `demo.sipp`) would be looked up again from there.
        let dir = &std::fs::canonicalize(dir).map_err(io(dir))?;
        let scenario = dir.join("provider.xml");
        std::fs::write(&scenario, PROVIDER_XML).map_err(io(&scenario))?;
        let message_log = dir.join("messages.log");
        let mut last = String::new();
        for _attempt in 0..3 {
            let _ = std::fs::remove_file(&message_log);
            let port = free_udp_port()?;
            let media_port = free_udp_port()?;
            let mut cmd = tokio::process::Command::new("sipp");
            cmd.current_dir(dir)
                .arg("-sf")
                .arg(&scenario)
                .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
                .args(["-mp", &media_port.to_string(), "-rtp_echo"])
                .args(["-nostdin", "-trace_err", "-trace_msg", "-message_file"])
                .arg(&message_log)
                .args(["-max_socket", "5000"])
                .args(["-watchdog_minor_threshold", "2000"])
                .args(["-watchdog_major_threshold", "10000"])
                .args(["-set", "p_busy", &rates.busy.to_string()])
                .args(["-set", "p_noanswer", &rates.no_answer.to_string()])
                .args(["-set", "p_reject", &rates.reject.to_string()])
                .args(["-set", "p_unavailable", &rates.unavailable.to_string()])
                .args(["-set", "p_machine", &rates.machine.to_string()])
                .args(["-set", "ring_min", &rates.ring_ms.0.to_string()])
                .args(["-set", "ring_max", &rates.ring_ms.1.to_string()])
                .args(["-set", "talk_mean", &rates.talk_mean_ms.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(SippError::NotInstalled)?;
            for _ in 0..100 {
                if udp_taken(port) {
                    return Ok(SippProvider {
                        child,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        message_log,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("exited with {status}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill().await;
            if last.is_empty() {
                last = format!("port {port} not open after 5 s");
            }
        }
        Err(SippError::DidNotStart(last))
    }

    /// Its SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The message log (`-trace_msg`).
    pub fn message_log(&self) -> &Path {
        &self.message_log
    }

    /// Stops SIPp and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The INVITEs in a SIPp message log, in arrival order, one per Call-ID.
pub fn invites(log: &str) -> Vec<Invite> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    // Each message follows a "... message received [N] bytes :" line.
    for block in log.split("message received").skip(1) {
        let mut lines = block
            .lines()
            .skip(1)
            .map(str::trim)
            .skip_while(|l| l.is_empty());
        let Some(start) = lines.next() else { continue };
        let Some(uri) = start.strip_prefix("INVITE ") else {
            continue;
        };
        let user = uri
            .trim_start_matches("sip:")
            .split(['@', ';', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        let call_id = lines
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                (name.eq_ignore_ascii_case("call-id") || name == "i").then(|| value.trim())
            })
            .unwrap_or_default()
            .to_string();
        if seen.insert(call_id.clone()) {
            out.push(Invite { call_id, user });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invites_folds_retransmissions_and_skips_other_messages() {
        let log = "\
----------------------------------------------- 2026-11-23 17:00:00.000000
UDP message received [300] bytes :

INVITE sip:+12125550101@127.0.0.1:5070 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKa
Call-ID: one@host
CSeq: 1 INVITE

----------------------------------------------- 2026-11-23 17:00:00.500000
UDP message received [300] bytes :

INVITE sip:+12125550101@127.0.0.1:5070 SIP/2.0
Call-ID: one@host

----------------------------------------------- 2026-11-23 17:00:01.000000
UDP message received [200] bytes :

ACK sip:+12125550101@127.0.0.1:5070 SIP/2.0
Call-ID: one@host

----------------------------------------------- 2026-11-23 17:00:02.000000
UDP message received [300] bytes :

INVITE sip:+13055550167@127.0.0.1:5070;transport=udp SIP/2.0
i: two@host
";
        assert_eq!(
            invites(log),
            vec![
                Invite {
                    call_id: "one@host".into(),
                    user: "+12125550101".into()
                },
                Invite {
                    call_id: "two@host".into(),
                    user: "+13055550167".into()
                },
            ]
        );
    }
}
