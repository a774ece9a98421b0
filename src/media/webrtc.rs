//! The browser softphone: a WebRTC audio leg terminated here and handed to
//! the bridge as a plain RTP peer on loopback, so a browser is bridged to
//! the customer exactly as a SIP phone is.
//!
//! str0m does the WebRTC part sans-IO (ICE-lite, DTLS, SRTP); this task
//! owns its sockets and feeds it the time. Three sockets:
//! - `ext` faces the browser (ICE, DTLS and SRTP on one port);
//! - `leg` is the agent leg the bridge relays with, as it relays with a
//!   SIP phone's RTP socket;
//! - `int` is the plain-RTP peer of `leg` on loopback: what arrives on it
//!   (the customer's audio) is written to the browser, and the browser's
//!   audio is sent from it to `leg`.
//!
//! PCMU and PCMA only (RFC 7874 makes both mandatory for browsers): the
//! customer's G.711 passes through without transcoding; the browser's
//! audio is re-encoded only if it chose the other law than the customer's
//! leg carries. The browser's
//! audio is always sent on to the agent leg, as a SIP phone's is: the
//! bridge drops what queued there between calls.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::g711;
use super::rtp::Packet;

/// A gap in the bridge's packets this long starts a new call (for the
/// first-packet figure).
const BRIDGE_IDLE: Duration = Duration::from_millis(500);

/// How long the browser has to finish ICE and DTLS after the answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the browser's ICE may stay disconnected before the leg ends
/// (RFC 7675's consent expires after 30 s; a lapse of a few seconds, a
/// busy or roaming browser, is common and recovers).
pub const ICE_LAPSE: Duration = Duration::from_secs(15);

/// The SDP parser's error told without the memory address its first line
/// gives as the position ("Parse error at PointerOffset(0x7f...)"), which
/// means nothing to the browser's side: what it expected and found.
fn offer_parse_error(e: &str) -> String {
    let told: Vec<&str> = e
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("PointerOffset"))
        .collect();
    if told.is_empty() {
        "not valid SDP (RFC 8866)".to_string()
    } else {
        format!("not valid SDP (RFC 8866): {}", told.join("; "))
    }
}

/// Why a softphone could not start.
#[derive(Debug, thiserror::Error)]
pub enum SoftphoneError {
    /// The browser's offer is not SDP we accept.
    #[error("the SDP offer: {0}")]
    Offer(String),
    /// The offer has no audio in PCMU or PCMA.
    #[error("the offer has no audio in PCMU or PCMA")]
    NoG711,
    /// The media address cannot be offered to a browser.
    #[error("media address {0} cannot be a WebRTC candidate: set a concrete --media-ip")]
    Address(IpAddr),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a softphone stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneState {
    /// Waiting for the browser's ICE checks and DTLS handshake.
    Connecting,
    /// Media can flow.
    Connected,
    /// Over, and why.
    Ended(String),
}

/// Counters of one softphone, for tests and the figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhoneStats {
    /// RTP packets from the bridge written to the browser.
    pub to_browser: u64,
    /// Audio frames from the browser sent to the agent leg.
    pub to_bridge: u64,
    /// Bridge packets dropped (not RTP, not G.711, or before the browser
    /// connected).
    pub dropped: u64,
    /// Microseconds from the first bridge packet after a quiet spell (a
    /// new call) to its SRTP packet leaving for the browser, the last one.
    pub first_packet_us: Option<u64>,
}

/// A browser leg, started from its SDP offer.
#[derive(Debug)]
pub struct Softphone {
    /// The SDP answer for the browser.
    pub answer: String,
    /// The agent leg's socket: the bridge relays with it.
    pub leg: Arc<UdpSocket>,
    /// Where the bridge sends the customer's audio.
    pub peer: SocketAddr,
    /// The phone's state.
    pub state: watch::Receiver<PhoneState>,
    /// The phone's counters, updated as it goes.
    pub stats: watch::Receiver<PhoneStats>,
    hangup: Option<oneshot::Sender<()>>,
}

impl Softphone {
    /// Answers `offer` with one audio line on `ext` (bound by the caller,
    /// from the RTP port range) and starts the leg's task. The candidate
    /// offered is `ext`'s address, or `advertised` with `ext`'s port when
    /// the browser reaches this host at another address (NAT: the
    /// service's `--external-address`).
    pub fn accept(
        offer: &str,
        ext: std::net::UdpSocket,
        advertised: Option<IpAddr>,
    ) -> Result<Softphone, SoftphoneError> {
        let local = ext.local_addr()?;
        // str0m matches what arrives by the candidate's address: packets
        // are handed to it as sent to that address.
        let ext_addr = SocketAddr::new(advertised.unwrap_or(local.ip()), local.port());
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| SoftphoneError::Offer(offer_parse_error(&e.to_string())))?;
        let now = Instant::now().into_std();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(now);
        let candidate =
            Candidate::host(ext_addr, "udp").map_err(|_| SoftphoneError::Address(ext_addr.ip()))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SoftphoneError::Offer(e.to_string()))?;
        let answer = answer.to_sdp_string();
        if !answer.contains("PCMU/8000") && !answer.contains("PCMA/8000") {
            return Err(SoftphoneError::NoG711);
        }
        // The bridge side stays on loopback whatever the media address.
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let bind = |a| -> Result<UdpSocket, SoftphoneError> {
            let s = std::net::UdpSocket::bind(a)?;
            s.set_nonblocking(true)?;
            Ok(UdpSocket::from_std(s)?)
        };
        let leg = Arc::new(bind(local)?);
        let int = bind(local)?;
        let peer = int.local_addr()?;
        ext.set_nonblocking(true)?;
        let ext = UdpSocket::from_std(ext)?;
        let (state_tx, state) = watch::channel(PhoneState::Connecting);
        let (stats_tx, stats) = watch::channel(PhoneStats::default());
        let (hangup, hangup_rx) = oneshot::channel();
        let gateway = Gateway {
            rtc,
            ext,
            ext_addr,
            int,
            leg_addr: leg.local_addr()?,
            mid: None,
            state: state_tx,
            stats: stats_tx,
            counts: PhoneStats::default(),
            lapsed_since: None,
            bridge_seen: None,
            bridge_pt: None,
            pending_first: None,
            out_seq: rand::random(),
            out_ssrc: rand::random(),
            first_out: true,
        };
        tokio::spawn(gateway.run(hangup_rx));
        Ok(Softphone {
            answer,
            leg,
            peer,
            state,
            stats,
            hangup: Some(hangup),
        })
    }

    /// Waits until the browser is connected, or says why not.
    pub async fn connected(&mut self, within: Duration) -> Result<(), String> {
        let wait = self
            .state
            .wait_for(|s| !matches!(s, PhoneState::Connecting));
        match tokio::time::timeout(within, wait).await {
            Err(_) => Err("the browser did not connect in time".into()),
            Ok(Err(_)) => Err("the softphone stopped".into()),
            Ok(Ok(s)) => match &*s {
                PhoneState::Connected => Ok(()),
                PhoneState::Ended(why) => Err(why.clone()),
                PhoneState::Connecting => Err("still connecting".into()),
            },
        }
    }

    /// Ends the leg (the browser sees its connection close).
    pub fn hang_up(&mut self) {
        if let Some(h) = self.hangup.take() {
            let _ = h.send(());
        }
    }
}

impl Drop for Softphone {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// The task behind a [`Softphone`].
struct Gateway {
    rtc: Rtc,
    ext: UdpSocket,
    ext_addr: SocketAddr,
    int: UdpSocket,
    leg_addr: SocketAddr,
    mid: Option<Mid>,
    state: watch::Sender<PhoneState>,
    stats: watch::Sender<PhoneStats>,
    counts: PhoneStats,
    /// Since when the browser's ICE has been disconnected, if it is.
    lapsed_since: Option<Instant>,
    /// When the bridge last sent.
    bridge_seen: Option<Instant>,
    /// The payload type of the bridge's (the customer's) audio.
    bridge_pt: Option<u8>,
    /// A new call's first packet, written, not yet sent.
    pending_first: Option<Instant>,
    out_seq: u16,
    out_ssrc: u32,
    first_out: bool,
}

impl Gateway {
    async fn run(mut self, mut hangup: oneshot::Receiver<()>) {
        let why = match self.serve(&mut hangup).await {
            Ok(why) => why,
            Err(e) => format!("the WebRTC session failed: {e}"),
        };
        tracing::debug!(why = %why, "softphone ended");
        self.rtc.disconnect();
        self.publish();
        let _ = self.state.send(PhoneState::Ended(why));
    }

    async fn serve(&mut self, hangup: &mut oneshot::Receiver<()>) -> Result<String, RtcError> {
        let mut ext_buf = vec![0u8; 2048];
        let mut int_buf = vec![0u8; 2048];
        let give_up = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let deadline = match self.drain().await? {
                Some(d) => d,
                None => return Ok("the browser disconnected".into()),
            };
            if !self.rtc.is_connected()
                && *self.state.borrow() == PhoneState::Connecting
                && Instant::now() >= give_up
            {
                return Ok("the browser did not connect in time".into());
            }
            if self.lapsed_since.is_some_and(|t| t.elapsed() >= ICE_LAPSE) {
                return Ok("the browser disconnected".into());
            }
            let mut wake = Instant::from_std(deadline);
            if !self.rtc.is_connected() {
                wake = wake.min(give_up);
            }
            if let Some(t) = self.lapsed_since {
                wake = wake.min(t + ICE_LAPSE);
            }
            tokio::select! {
                _ = &mut *hangup => return Ok("hung up".into()),
                r = self.ext.recv_from(&mut ext_buf) => {
                    let (n, source) = r?;
                    let now = Instant::now().into_std();
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.ext_addr, &ext_buf[..n]) {
                        let input = Input::Receive(now, r);
                        if self.rtc.accepts(&input) {
                            self.rtc.handle_input(input)?;
                        }
                    }
                }
                r = self.int.recv_from(&mut int_buf) => {
                    let (n, _) = r?;
                    self.bridge_packet(&int_buf[..n])?;
                }
                () = tokio::time::sleep_until(wake) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now().into_std()))?;
                }
            }
        }
    }

    /// Sends what str0m has to send and handles its events; the time it
    /// wants to be woken at, or `None` once the session is over.
    async fn drain(&mut self) -> Result<Option<std::time::Instant>, RtcError> {
        loop {
            if !self.rtc.is_alive() {
                return Ok(None);
            }
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(Some(t)),
                Output::Transmit(t) => {
                    if let Err(e) = self.ext.send_to(&t.contents, t.destination).await {
                        tracing::debug!(error = %e, "sending to the browser failed");
                    }
                    if let Some(since) = self.pending_first.take() {
                        self.counts.first_packet_us =
                            Some(u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX));
                        self.publish();
                    }
                }
                Output::Event(e) => {
                    if !self.event(e).await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Handles one str0m event; false when the session is over.
    async fn event(&mut self, e: Event) -> bool {
        match e {
            Event::Connected => {
                let _ = self.state.send(PhoneState::Connected);
            }
            // A lapse (a busy or roaming browser) may recover: the leg
            // ends only if it has not within ICE_LAPSE.
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                tracing::debug!("the browser's ICE lapsed");
                self.lapsed_since.get_or_insert_with(Instant::now);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => self.lapsed_since = None,
            Event::MediaAdded(m) => self.mid = Some(m.mid),
            Event::MediaData(d) => {
                let from = match d.params.spec().codec {
                    Codec::PCMU => 0,
                    Codec::PCMA => 8,
                    _ => return true,
                };
                // The customer's leg speaks one G.711 law (what its packets
                // carry); the browser may send the other: re-encode then
                // (a table look-up per sample).
                let to = self.bridge_pt.unwrap_or(from);
                let mut recoded = Vec::new();
                let payload: &[u8] = if to == from {
                    &d.data
                } else {
                    let mut samples = Vec::with_capacity(d.data.len());
                    if g711::decode(from, &d.data, &mut samples).is_err()
                        || g711::encode(to, &samples, &mut recoded).is_err()
                    {
                        return true;
                    }
                    &recoded
                };
                let packet = Packet {
                    payload_type: to,
                    marker: std::mem::take(&mut self.first_out),
                    sequence: self.out_seq,
                    // The clock rate of G.711 is 8 kHz: the media time's
                    // numerator is the RTP timestamp.
                    timestamp: d.time.numer() as u32,
                    ssrc: self.out_ssrc,
                    payload,
                };
                self.out_seq = self.out_seq.wrapping_add(1);
                let mut out = Vec::with_capacity(12 + payload.len());
                packet.write(&mut out);
                if self.int.send_to(&out, self.leg_addr).await.is_ok() {
                    self.counts.to_bridge += 1;
                }
                if self.counts.to_bridge % 50 == 1 {
                    self.publish();
                }
            }
            _ => {}
        }
        true
    }

    /// Writes a packet from the bridge to the browser.
    fn bridge_packet(&mut self, buf: &[u8]) -> Result<(), RtcError> {
        let now = Instant::now();
        let quiet = self.bridge_seen.is_none_or(|t| t.elapsed() >= BRIDGE_IDLE);
        self.bridge_seen = Some(now);
        let Ok(p) = Packet::parse(buf) else {
            self.counts.dropped += 1;
            return Ok(());
        };
        let codec = match p.payload_type {
            0 => Codec::PCMU,
            8 => Codec::PCMA,
            _ => {
                self.counts.dropped += 1;
                return Ok(());
            }
        };
        self.bridge_pt = Some(p.payload_type);
        let Some(mid) = self.mid else {
            self.counts.dropped += 1;
            return Ok(());
        };
        let Some(writer) = self.rtc.writer(mid) else {
            self.counts.dropped += 1;
            return Ok(());
        };
        let Some(pt) = writer
            .payload_params()
            .find(|pp| pp.spec().codec == codec)
            .map(|pp| pp.pt())
        else {
            self.counts.dropped += 1;
            return Ok(());
        };
        if !self.rtc.is_connected() {
            self.counts.dropped += 1;
            return Ok(());
        }
        let Some(writer) = self.rtc.writer(mid) else {
            self.counts.dropped += 1;
            return Ok(());
        };
        let time = MediaTime::new(u64::from(p.timestamp), Frequency::EIGHT_KHZ);
        writer.write(pt, now.into_std(), time, p.payload.to_vec())?;
        self.counts.to_browser += 1;
        if quiet {
            self.pending_first = Some(now);
        }
        if self.counts.to_browser % 50 == 1 {
            self.publish();
        }
        Ok(())
    }

    fn publish(&self) {
        let _ = self.stats.send(self.counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's bad offer is told what the parser expected, never the
    /// memory address the parser gives as the position.
    #[test]
    fn a_bad_offer_is_told_without_a_memory_address() {
        let Err(e) = SdpOffer::from_sdp_string("v=0\r\n") else {
            panic!("a bare v=0 is not an offer");
        };
        let told = offer_parse_error(&e.to_string());
        assert!(told.starts_with("not valid SDP (RFC 8866)"), "{told}");
        assert!(!told.contains("0x") && !told.contains("Pointer"), "{told}");
        assert_eq!(offer_parse_error(""), "not valid SDP (RFC 8866)");
    }
}
