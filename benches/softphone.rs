//! Answer → audio in the browser leg (issue 18): from the bridge decision
//! (the relay between the customer's leg and the agent's standing leg is
//! started) to the first packet of the customer's audio arriving at the
//! browser, p50/p99/max over CALLS bridges (500), on loopback. The browser
//! is a str0m WebRTC peer (full ICE, DTLS-SRTP, PCMU) on one softphone
//! kept up for the whole run, as an agent's is for a session. The customer
//! sends 20 ms RTP from its answer, 0-300 ms before the bridge, as a
//! carrier does. Side by side in the same run: the same bridges to a SIP
//! phone's plain RTP socket. Run with `cargo bench --bench softphone`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/webrtc_peer.rs"]
mod webrtc_peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialler::media::relay::{Leg, relay};
use dialler::media::rtp::Packet;
use dialler::media::webrtc::Softphone;
use rand::RngExt;
use tokio::net::UdpSocket;
use tokio::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A customer sending 20 ms PCMU packets to `to` until dropped.
fn customer(to: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let payload = [0x2au8; 160];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seq: u16 = 0;
        loop {
            tick.tick().await;
            let mut out = Vec::new();
            Packet {
                payload_type: 0,
                marker: seq == 0,
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: 0xc0ffee,
                payload: &payload,
            }
            .write(&mut out);
            let _ = sock.send_to(&out, to).await;
            seq = seq.wrapping_add(1);
        }
    })
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

/// One bridge: the customer answers, `lead` later the relay starts; the
/// time from then until `arrived` says the first packet came.
async fn bridge_once<F, Fut>(agent: Leg, lead: Duration, arrived: F) -> f64
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let call_leg = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let talking = customer(call_leg.local_addr().unwrap());
    tokio::time::sleep(lead).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t0 = Instant::now();
    let relay_task = tokio::spawn(relay(
        Leg {
            socket: call_leg,
            peer: None,
            codec: None,
            stats: None,
            events: None,
            hold: None,
        },
        agent,
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::timeout(Duration::from_secs(5), arrived())
        .await
        .expect("the customer's audio arrived");
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let _ = stop_tx.send(());
    let _ = relay_task.await;
    talking.abort();
    ms
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let calls = env("CALLS", if benching { 500 } else { 10 });

    // The browser's softphone, up for the run.
    let peer = webrtc_peer::Peer::new().await;
    let ext = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut phone = Softphone::accept(&peer.offer, ext, None).unwrap();
    let browser = peer.run(&phone.answer);
    phone.connected(Duration::from_secs(10)).await.unwrap();
    let mut frames = browser.frames.clone();

    // A SIP phone's plain RTP socket, for the side-by-side figure.
    let sip_phone = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let sip_leg = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());

    let mut rng = rand::rng();
    let (mut web, mut sip) = (Vec::new(), Vec::new());
    for _ in 0..calls {
        let lead = Duration::from_millis(rng.random_range(0..=300));
        let agent = Leg {
            socket: phone.leg.clone(),
            peer: Some(phone.peer),
            codec: None,
            stats: None,
            events: None,
            hold: None,
        };
        let before = *frames.borrow_and_update();
        web.push(
            bridge_once(agent, lead, || async {
                let _ = frames.wait_for(|n| *n > before).await;
            })
            .await,
        );
        // Calls apart, as a wrap-up keeps them.
        tokio::time::sleep(Duration::from_millis(100)).await;

        let agent = Leg {
            socket: sip_leg.clone(),
            peer: Some(sip_phone.local_addr().unwrap()),
            codec: None,
            stats: None,
            events: None,
            hold: None,
        };
        let phone_sock = sip_phone.clone();
        // What reached the phone before this call is not this call's.
        let mut buf = vec![0u8; 2048];
        while phone_sock.try_recv_from(&mut buf).is_ok() {}
        sip.push(
            bridge_once(agent, lead, || async move {
                let mut buf = vec![0u8; 2048];
                let _ = phone_sock.recv_from(&mut buf).await;
            })
            .await,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = *phone.stats.borrow();
    let (w50, w99, wmax) = percentiles(web);
    let (s50, s99, smax) = percentiles(sip);
    println!("softphone: {calls} bridges on loopback, customer talking 0-300 ms before the bridge");
    println!(
        "  bridge decision -> first customer packet at the browser (WebRTC, SRTP): p50 {w50:.2} ms, p99 {w99:.2} ms, max {wmax:.2} ms"
    );
    println!(
        "  same bridges to a SIP phone's plain RTP socket:                        p50 {s50:.2} ms, p99 {s99:.2} ms, max {smax:.2} ms"
    );
    println!(
        "  softphone counters: {} packets to the browser, {} frames from it, {} dropped",
        stats.to_browser, stats.to_bridge, stats.dropped
    );
    assert!(w99 < 1000.0, "no bridge took a second");
    phone.hang_up();
}
