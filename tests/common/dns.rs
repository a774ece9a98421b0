//! A real DNS server for resolution tests: dnsmasq on a free loopback
//! port, answering only from its command line (no resolv.conf, no hosts
//! file). Under CI=true a missing dnsmasq fails the test.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::sipp::free_port;

/// A running dnsmasq, killed on drop.
pub struct Dnsmasq {
    child: Child,
    /// Where it answers (UDP and TCP).
    pub addr: SocketAddr,
}

fn binary() -> Option<&'static str> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (dnsmasq options such as
    /// `--srv-host=...`, `--host-record=...`, `--naptr-record=...`).
    /// `None` when dnsmasq is missing outside CI.
    pub async fn start(records: &[String]) -> Option<Dnsmasq> {
        let Some(bin) = binary() else {
            if super::in_ci() {
                panic!("dnsmasq is required under CI=true (Debian package dnsmasq-base)");
            }
            eprintln!("skipping: dnsmasq is not installed (apt-get install dnsmasq-base)");
            return None;
        };
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(bin);
            cmd.args([
                "--keep-in-foreground",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file",
                "--log-facility=-",
                // Authoritative for .test: a name or type it has no record
                // for gets NXDOMAIN/NODATA, as a real zone answers, not
                // REFUSED for want of an upstream server.
                "--local=/test/",
            ])
            .arg(format!("--port={port}"))
            // As root dnsmasq would switch to "nobody"; stay as we are.
            .args(running_as_root().then_some("--user=root"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
            let mut child = cmd.spawn().expect("spawn dnsmasq");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            for _ in 0..100 {
                if std::net::TcpStream::connect(addr).is_ok() {
                    return Some(Dnsmasq { child, addr });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("dnsmasq exited: {status}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            let _ = child.kill().await;
        }
        panic!("dnsmasq did not start: {last}");
    }

    /// SIGHUP: dnsmasq reads its `--addn-hosts` files again and clears
    /// its cache.
    pub fn reload(&self) {
        let pid = self.child.id().expect("dnsmasq is running");
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP")
            .success();
        assert!(ok, "kill -HUP {pid} failed");
    }

    /// Stops answering (kills the server).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}
