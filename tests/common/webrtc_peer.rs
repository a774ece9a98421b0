//! A WebRTC peer standing in for a browser (str0m, full ICE, the
//! controlling side, PCMU): it offers one audio line, connects to the
//! dialler's ICE-lite answer, sends a 20 ms frame every 20 ms while asked
//! to, and counts what it receives. The real browser is tried in
//! tests/agent_desktop.rs; this peer runs where no browser is needed.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the peer saw, shared with the test.
#[derive(Debug, Default)]
pub struct Seen {
    /// Audio frames received.
    pub frames: AtomicU64,
    /// Bytes of audio received.
    pub bytes: AtomicU64,
    /// Frames sent.
    pub sent: AtomicU64,
    /// When the last frame arrived, µs since the peer started.
    pub last_frame_us: AtomicU64,
}

/// A peer that has made its offer.
pub struct Peer {
    rtc: Rtc,
    sock: UdpSocket,
    pending: SdpPendingOffer,
    mid: Mid,
    /// The SDP offer to post.
    pub offer: String,
}

/// A running peer.
pub struct Running {
    /// Counters.
    pub seen: Arc<Seen>,
    /// Send audio while true.
    pub sending: Arc<AtomicBool>,
    /// True once ICE and DTLS are up; false again when disconnected.
    pub connected: watch::Receiver<bool>,
    /// When the peer started.
    pub start: Instant,
    /// Audio frames received so far, changed on each.
    pub frames: watch::Receiver<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Peer {
    /// A peer on 127.0.0.1 with its offer made.
    pub async fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = sock.local_addr().expect("addr");
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_pcmu(true, false)
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(Instant::now().into_std());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().expect("an offer");
        Peer {
            rtc,
            sock,
            pending,
            mid,
            offer: offer.to_sdp_string(),
        }
    }

    /// Takes the answer and runs until dropped.
    pub fn run(mut self, answer: &str) -> Running {
        let answer = SdpAnswer::from_sdp_string(answer).expect("an SDP answer");
        self.rtc
            .sdp_api()
            .accept_answer(self.pending, answer)
            .expect("answer accepted");
        let seen = Arc::new(Seen::default());
        let sending = Arc::new(AtomicBool::new(false));
        let (conn_tx, connected) = watch::channel(false);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let (frames_tx, frames) = watch::channel(0u64);
        let start = Instant::now();
        tokio::spawn(drive(
            self.rtc,
            self.sock,
            self.mid,
            seen.clone(),
            sending.clone(),
            conn_tx,
            frames_tx,
            stop_rx,
            start,
        ));
        Running {
            seen,
            sending,
            connected,
            start,
            frames,
            stop: Some(stop),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut rtc: Rtc,
    sock: UdpSocket,
    mid: Mid,
    seen: Arc<Seen>,
    sending: Arc<AtomicBool>,
    connected: watch::Sender<bool>,
    frames: watch::Sender<u64>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    start: Instant,
) {
    let local: SocketAddr = sock.local_addr().expect("addr");
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut rtp_time: u64 = 0;
    loop {
        let deadline = loop {
            if !rtc.is_alive() {
                let _ = connected.send(false);
                return;
            }
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        let _ = connected.send(true);
                    }
                    Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                        let _ = connected.send(false);
                        return;
                    }
                    Event::MediaData(d) => {
                        let n = seen.frames.fetch_add(1, Ordering::Relaxed) + 1;
                        frames.send_replace(n);
                        seen.bytes.fetch_add(d.data.len() as u64, Ordering::Relaxed);
                        seen.last_frame_us
                            .store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    _ => {}
                },
                Err(_) => {
                    let _ = connected.send(false);
                    return;
                }
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            r = sock.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { return };
                if let Ok(r) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    let _ = rtc.handle_input(Input::Receive(Instant::now().into_std(), r));
                }
            }
            _ = tick.tick() => {
                if sending.load(Ordering::Relaxed) && rtc.is_connected()
                    && let Some(pt) = rtc.writer(mid).and_then(|w| {
                        w.payload_params().find(|p| p.spec().codec == Codec::PCMU).map(|p| p.pt())
                    })
                    && let Some(w) = rtc.writer(mid)
                {
                    // A 400 Hz tone, μ-law encoded by the dialler's codec.
                    let samples: Vec<i16> = (0..160u64)
                        .map(|i| {
                            let t = (rtp_time + i) as f64 / 8000.0;
                            (8000.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16
                        })
                        .collect();
                    let frame: Vec<u8> = samples.iter().map(|s| dialler::media::g711::ulaw_encode(*s)).collect();
                    let at = MediaTime::new(rtp_time, Frequency::EIGHT_KHZ);
                    if w.write(pt, Instant::now().into_std(), at, frame).is_ok() {
                        seen.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    rtp_time += 160;
                }
                let _ = rtc.handle_input(Input::Timeout(Instant::now().into_std()));
            }
            () = tokio::time::sleep_until(Instant::from_std(deadline)) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now().into_std()));
            }
        }
    }
}
