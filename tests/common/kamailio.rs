//! Kamailio as a carrier edge for the SIP tests (tests/kamailio/edge.cfg):
//! TLS with a certificate for `carrier.test` from a CA made here, a
//! registrar with digest auth, record-routing and forking to SIPp UASes.
//! Under CI=true a missing Kamailio fails the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::sipp::free_port;

/// A running Kamailio, killed on drop.
pub struct Kamailio {
    child: Child,
    /// Its UDP listener.
    pub udp: SocketAddr,
    /// Its TLS listener.
    pub tls: SocketAddr,
    /// The CA certificate (PEM) its server certificate chains to.
    pub ca: PathBuf,
    /// Config, certificates and logs.
    pub dir: tempfile::TempDir,
}

fn modules() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.join("tls.so").exists())
}

/// A CA and a server certificate for `name`, as PEM files in `dir`:
/// returns (ca, cert, key).
pub fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dialler test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("server params");
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let (ca, crt, pem) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca, ca_cert.pem()).expect("write CA");
    std::fs::write(&crt, cert.pem()).expect("write certificate");
    std::fs::write(&pem, key.serialize_pem()).expect("write key");
    (ca, crt, pem)
}

fn listening_tcp(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

impl Kamailio {
    /// Starts the edge in front of SIPp UASes at `uas_a` and `uas_b`
    /// (forked INVITEs go to both). `None` when Kamailio is missing
    /// outside CI.
    pub async fn start(uas_a: u16, uas_b: u16) -> Option<Kamailio> {
        let bin = Path::new("/usr/sbin/kamailio");
        let Some(mods) = modules().filter(|_| bin.exists()) else {
            if super::in_ci() {
                panic!(
                    "kamailio is required under CI=true (Debian kamailio, kamailio-tls-modules)"
                );
            }
            eprintln!(
                "skipping: kamailio is not installed (apt-get install kamailio kamailio-tls-modules)"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (ca, cert, key) = certificates(dir.path(), "carrier.test");
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kamailio");
        let tls_cfg = std::fs::read_to_string(here.join("tls.cfg"))
            .expect("tls.cfg")
            .replace("@KEY@", &key.display().to_string())
            .replace("@CERT@", &cert.display().to_string());
        std::fs::write(dir.path().join("tls.cfg"), tls_cfg).expect("write tls.cfg");
        let mut last = String::new();
        for _ in 0..3 {
            let (udp, tls) = (free_port(), free_port());
            let cfg = std::fs::read_to_string(here.join("edge.cfg"))
                .expect("edge.cfg")
                .replace("@UDP_PORT@", &udp.to_string())
                .replace("@TLS_PORT@", &tls.to_string())
                .replace("@UAS_A@", &uas_a.to_string())
                .replace("@UAS_B@", &uas_b.to_string())
                .replace("@MODULES@", &mods.display().to_string())
                .replace(
                    "@TLS_CFG@",
                    &dir.path().join("tls.cfg").display().to_string(),
                );
            let cfg_path = dir.path().join("edge.cfg");
            std::fs::write(&cfg_path, cfg).expect("write edge.cfg");
            let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log");
            let mut child = Command::new(bin)
                .arg("-f")
                .arg(&cfg_path)
                .args(["-DD", "-E", "-m", "64", "-M", "8"])
                .arg("-Y")
                .arg(dir.path())
                .arg("-P")
                .arg(dir.path().join("kamailio.pid"))
                .arg("-w")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("log")))
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                // Its own process group, so its children go with it.
                .process_group(0)
                .spawn()
                .expect("spawn kamailio");
            let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls));
            for _ in 0..100 {
                if listening_tcp(tls_addr) {
                    return Some(Kamailio {
                        child,
                        udp: SocketAddr::from(([127, 0, 0, 1], udp)),
                        tls: tls_addr,
                        ca,
                        dir,
                    });
                }
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "kamailio exited ({status}):\n{}",
                        std::fs::read_to_string(dir.path().join("kamailio.log"))
                            .unwrap_or_default()
                    );
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            kill_group(&child);
            let _ = child.kill().await;
        }
        panic!("Kamailio did not start: {last}");
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }
}

/// Kills Kamailio and the children it forked (its process group).
fn kill_group(child: &Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        kill_group(&self.child);
        let _ = self.child.start_kill();
    }
}
