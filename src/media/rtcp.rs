//! RTCP (RFC 3550 section 6) for a call's customer leg, sans-IO: what was
//! sent and received on the leg ([`LegStats`], updated by the relay per
//! packet), the compound report we send (SR while we send media, else RR,
//! with a report block on what we received and SDES CNAME), and reading
//! the peer's SR/RR (its view of our stream: loss, jitter, round trip).
//!
//! Written here: the packets are a few fixed layouts and the statistics
//! are the RFC's appendix A algorithms; the RTCP crates around bring their
//! own RTP session and sockets, which the relay already owns.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RTP clock of G.711, Hz.
const CLOCK: f64 = 8_000.0;

/// A forward jump of the sequence number still taken as in order (RFC
/// 3550 A.1's MAX_DROPOUT).
const MAX_DROPOUT: u16 = 3_000;
/// How far back a late packet may be before a jump is taken for a new
/// start of the stream (A.1's MAX_MISORDER).
const MAX_MISORDER: u16 = 100;

/// What was received from one source (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// The source.
    pub ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    /// After a very large jump, the number that would confirm it (the
    /// sender restarted its sequence): A.1's `bad_seq`.
    bad_seq: Option<u16>,
    /// Packets received.
    pub packets: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Last relative transit time, modulo 2^32 (A.8).
    transit: Option<u32>,
    /// Interarrival jitter, timestamp units (A.8).
    jitter: f64,
}

impl Received {
    /// A media packet arrived: `arrival` in timestamp units of our own
    /// clock.
    pub fn packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: u32) {
        if !self.sequence(ssrc, seq) {
            return;
        }
        // Differences modulo 2^32: the timestamps start anywhere and wrap.
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = f64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// A packet of the source's stream that does not sample its clock
    /// (an RFC 4733 telephone-event, stamped with the event's start):
    /// counted for loss, as it takes a sequence number, but not for jitter.
    pub fn counted(&mut self, ssrc: u32, seq: u16) {
        self.sequence(ssrc, seq);
    }

    /// RFC 3550 A.1's `update_seq` (without the probation, as the source
    /// is the one the signalling set up): false for a packet not counted
    /// (the first after a very large jump).
    fn sequence(&mut self, ssrc: u32, seq: u16) -> bool {
        if self.ssrc != Some(ssrc) {
            // A new source (the phone restarted its stream): start again.
            *self = Received {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                packets: 1,
                ..Received::default()
            };
            return true;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER + 1 {
            // A very large jump: two packets in sequence take it for a
            // restart of the sender's numbering.
            if self.bad_seq == Some(seq) {
                let (ssrc, jitter, transit) = (self.ssrc, self.jitter, self.transit);
                *self = Received {
                    ssrc,
                    base_seq: u32::from(seq),
                    max_seq: seq,
                    jitter,
                    transit,
                    ..Received::default()
                };
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return false;
            }
        }
        // Else a duplicate or late packet: counted, the highest unchanged.
        self.packets += 1;
        true
    }

    fn extended_max(&self) -> u32 {
        self.cycles + u32::from(self.max_seq)
    }

    /// The report block on this source (`lsr`, `dlsr`: the last SR heard
    /// from it, see [`Peer`]), moving the interval counters on.
    pub fn block(&mut self, lsr: u32, dlsr: u32) -> Option<Block> {
        let ssrc = self.ssrc?;
        let expected = self.extended_max().wrapping_sub(self.base_seq) + 1;
        let lost = i64::from(expected) - i64::from(self.packets);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.packets.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.packets;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        Some(Block {
            ssrc,
            fraction_lost: fraction,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        })
    }
}

/// What we sent on the leg.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// The source we sent as (the stream the customer hears).
    pub ssrc: Option<u32>,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
    /// The last packet's RTP timestamp and when it went.
    pub last: Option<(u32, Instant)>,
}

impl Sent {
    /// A packet of `payload` bytes went out. Counts are per source (RFC
    /// 3550 6.4.1): a new SSRC (the agent leg's next call) starts them
    /// again.
    pub fn packet(&mut self, ssrc: u32, timestamp: u32, payload: usize, at: Instant) {
        if self.ssrc != Some(ssrc) {
            *self = Sent::default();
        }
        self.ssrc = Some(ssrc);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload as u32);
        self.last = Some((timestamp, at));
    }
}

/// Both directions of one leg, shared between the relay (which updates it
/// per packet) and the leg's RTCP task.
#[derive(Debug, Clone, Default)]
pub struct LegStats {
    /// From the peer.
    pub received: Received,
    /// To the peer.
    pub sent: Sent,
}

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The source reported on.
    pub ssrc: u32,
    /// Lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Lost in all (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number.
    pub highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the last SR's NTP time from that source.
    pub lsr: u32,
    /// Since then, 1/65536 s.
    pub dlsr: u32,
}

impl Block {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost as u32) & 0x00ff_ffff;
        out.push(self.fraction_lost);
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&self.highest_seq.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.lsr.to_be_bytes());
        out.extend_from_slice(&self.dlsr.to_be_bytes());
    }

    fn read(b: &[u8]) -> Option<Block> {
        let w = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let lost = w(4)? & 0x00ff_ffff;
        // Sign-extend the 24-bit count.
        let cumulative_lost = ((lost << 8) as i32) >> 8;
        Some(Block {
            ssrc: w(0)?,
            fraction_lost: *b.get(4)?,
            cumulative_lost,
            highest_seq: w(8)?,
            jitter: w(12)?,
            lsr: w(16)?,
            dlsr: w(20)?,
        })
    }

    /// Fraction lost as a share (0-1).
    pub fn loss(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }

    /// Jitter in milliseconds (8 kHz clock).
    pub fn jitter_ms(&self) -> f64 {
        f64::from(self.jitter) / CLOCK * 1000.0
    }
}

/// An NTP timestamp (RFC 3550 4): seconds since 1900 and the fraction.
pub fn ntp(at: SystemTime) -> u64 {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp (LSR, and the round trip's
/// units: 1/65536 s).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// What we heard from the peer: the middle of its last SR's NTP time and
/// when it came (for our LSR/DLSR), and its last report on our stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer {
    last_sr: Option<(u32, u64)>,
    /// Its last report block on the stream we send.
    pub report: Option<Block>,
    /// The round trip worked out from it, if it echoed one of our SRs.
    pub rtt: Option<Duration>,
}

impl Peer {
    /// LSR and DLSR for our report at `now_ntp`.
    pub fn lsr_dlsr(&self, now_ntp: u64) -> (u32, u32) {
        match self.last_sr {
            Some((lsr, at)) => (lsr, ntp_middle(now_ntp.saturating_sub(at))),
            None => (0, 0),
        }
    }

    /// Reads a compound packet from the peer, arrived at `now_ntp`; `ours`
    /// is the source we send as. Returns false when it is not RTCP.
    pub fn read(&mut self, buf: &[u8], now_ntp: u64, ours: Option<u32>) -> bool {
        let mut rest = buf;
        let mut any = false;
        while rest.len() >= 4 {
            let (v, count, pt) = (rest[0] >> 6, usize::from(rest[0] & 0x1f), rest[1]);
            let words = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let len = (words + 1) * 4;
            if v != 2 || len > rest.len() {
                return any;
            }
            let body = &rest[4..len];
            let blocks_at = match pt {
                // SR: sender SSRC, NTP (8), RTP ts, packets, octets.
                200 if body.len() >= 24 => {
                    let ntp = u64::from_be_bytes(body[4..12].try_into().unwrap_or_default());
                    self.last_sr = Some((ntp_middle(ntp), now_ntp));
                    Some(24)
                }
                201 if body.len() >= 4 => Some(4),
                _ => None,
            };
            if let Some(at) = blocks_at {
                any = true;
                for i in 0..count {
                    let Some(b) = body
                        .get(at + i * 24..at + (i + 1) * 24)
                        .and_then(Block::read)
                    else {
                        break;
                    };
                    if ours.is_none_or(|o| o == b.ssrc) {
                        if b.lsr != 0 {
                            let rt = ntp_middle(now_ntp).wrapping_sub(b.lsr).wrapping_sub(b.dlsr);
                            if rt < 0x8000_0000 {
                                self.rtt = Some(Duration::from_secs_f64(f64::from(rt) / 65_536.0));
                            }
                        }
                        self.report = Some(b);
                    }
                }
            } else {
                any |= (200..=204).contains(&pt);
            }
            rest = &rest[len..];
        }
        any
    }
}

/// Writes our compound report at `now_ntp` (`now` on the monotonic clock
/// the packets were stamped with): an SR as `sent.ssrc` when we have sent
/// media since the report before last (`sent_before`: the packet count
/// then, RFC 3550 6.4), else an RR as that source or, before any media,
/// `own_ssrc`; `block` on what we received; then SDES with `cname`.
#[allow(clippy::too_many_arguments)] // the fields of one RTCP report
pub fn report(
    out: &mut Vec<u8>,
    now_ntp: u64,
    now: Instant,
    own_ssrc: u32,
    sent: &Sent,
    sent_before: u32,
    block: Option<Block>,
    cname: &str,
) {
    let start = out.len();
    let count = u8::from(block.is_some());
    let sender = sent
        .ssrc
        .filter(|_| sent.packets > 0 && sent.packets != sent_before);
    let ssrc = sender.or(sent.ssrc).unwrap_or(own_ssrc);
    match (sender, sent.last) {
        (Some(_), Some((ts, at))) => {
            out.push(0x80 | count);
            out.push(200);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ssrc.to_be_bytes());
            out.extend_from_slice(&now_ntp.to_be_bytes());
            // The RTP time now, from the last packet's (RFC 3550 6.4.1).
            let ms = now.saturating_duration_since(at).as_millis() as u32;
            let rtp_now = ts.wrapping_add(ms.wrapping_mul(8));
            out.extend_from_slice(&rtp_now.to_be_bytes());
            out.extend_from_slice(&sent.packets.to_be_bytes());
            out.extend_from_slice(&sent.octets.to_be_bytes());
        }
        _ => {
            out.push(0x80 | count);
            out.push(201);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ssrc.to_be_bytes());
        }
    }
    if let Some(b) = block {
        b.write(out);
    }
    set_length(out, start);
    // SDES: one chunk, CNAME, padded to a word.
    let sdes = out.len();
    out.extend_from_slice(&[0x81, 202, 0, 0]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    let name = &cname.as_bytes()[..cname.len().min(255)];
    out.push(1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(0);
    while !(out.len() - sdes).is_multiple_of(4) {
        out.push(0);
    }
    set_length(out, sdes);
}

/// Appends an RTCP BYE for `ssrc` (the call is over) to the compound
/// packet `out`, which must begin with a report and SDES (RFC 3550 6.1:
/// a BYE is never sent alone; see [`report`]).
pub fn bye(out: &mut Vec<u8>, ssrc: u32) {
    out.extend_from_slice(&[0x81, 203, 0, 1]);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

fn set_length(out: &mut [u8], start: usize) {
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// How often reports go out (RFC 3550 6.2's minimum; with two
/// participants on a G.711 call the 5% bandwidth share gives less).
pub const INTERVAL: Duration = Duration::from_secs(5);

/// The wait before the next report (RFC 3550 6.3.1 and A.7): the
/// interval, halved before the first report, drawn from half to one and
/// a half times it and divided by e - 3/2 (the compensation for the
/// timer reconsideration the randomisation implies).
pub fn next_interval(first: bool) -> Duration {
    const COMPENSATION: f64 = std::f64::consts::E - 1.5;
    let t = if first { INTERVAL / 2 } else { INTERVAL };
    t.mul_f64(rand::random_range(0.5..1.5) / COMPENSATION)
}

/// A leg's RTCP session until `stop` completes: a compound report every
/// [`INTERVAL`] or so to `peer` (the peer's RTCP address: its RTP port
/// plus one unless its SDP says), the peer's reports read (what it says
/// of our stream goes to the metrics), then an RTCP BYE. `stats` is what
/// the relay counts on the leg; `clock` the service's, for NTP times.
pub async fn session(
    socket: std::sync::Arc<tokio::net::UdpSocket>,
    peer: std::net::SocketAddr,
    stats: std::sync::Arc<std::sync::Mutex<LegStats>>,
    clock: crate::clock::Clock,
    cname: String,
    leg: &'static str,
    stop: impl std::future::Future<Output = ()>,
) -> Peer {
    let own_ssrc: u32 = rand::random();
    let mut heard = Peer::default();
    let mut buf = vec![0u8; 1500];
    let mut out = Vec::with_capacity(128);
    tokio::pin!(stop);
    let mut next = tokio::time::Instant::now() + next_interval(true);
    // The packet count at the last two reports: an SR only while we
    // send (RFC 3550 6.4).
    let mut sent_at_reports = [0u32; 2];
    let ours = |stats: &std::sync::Mutex<LegStats>| stats.lock().ok().and_then(|s| s.sent.ssrc);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep_until(next) => {
                next += next_interval(false);
                let now = clock.now();
                let now_ntp = ntp(now.utc().into());
                let (sent, block) = match stats.lock() {
                    Ok(mut s) => {
                        let (lsr, dlsr) = heard.lsr_dlsr(now_ntp);
                        let block = s.received.block(lsr, dlsr);
                        (s.sent, block)
                    }
                    Err(_) => break,
                };
                out.clear();
                let mono = tokio::time::Instant::now().into_std();
                report(&mut out, now_ntp, mono, own_ssrc, &sent, sent_at_reports[0], block, &cname);
                sent_at_reports = [sent_at_reports[1], sent.packets];
                if let Err(e) = socket.send_to(&out, peer).await {
                    tracing::debug!("RTCP send: {e}");
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let now_ntp = ntp(clock.now().utc().into());
                if heard.read(&buf[..n], now_ntp, ours(&stats))
                    && let Some(b) = heard.report
                {
                    crate::metrics::record_rtcp(
                        leg,
                        b.loss(),
                        b.jitter_ms() / 1000.0,
                        heard.rtt.map(|r| r.as_secs_f64()),
                    );
                }
            }
        }
    }
    // The BYE goes in a compound packet after a last report (RFC 3550
    // 6.1), as the source we reported as.
    let now_ntp = ntp(clock.now().utc().into());
    let (sent, block) = match stats.lock() {
        Ok(mut s) => {
            let (lsr, dlsr) = heard.lsr_dlsr(now_ntp);
            let block = s.received.block(lsr, dlsr);
            (s.sent, block)
        }
        Err(_) => (Sent::default(), None),
    };
    out.clear();
    let mono = tokio::time::Instant::now().into_std();
    report(
        &mut out,
        now_ntp,
        mono,
        own_ssrc,
        &sent,
        sent_at_reports[0],
        block,
        &cname,
    );
    let ssrc = sent.ssrc.unwrap_or(own_ssrc);
    bye(&mut out, ssrc);
    let _ = socket.send_to(&out, peer).await;
    heard
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 packets with 10 lost in a row and steady 20 ms spacing: 10
    /// lost, fraction 10/100 of the interval, no jitter; a second
    /// interval with none lost reports 0.
    #[test]
    fn reception_counts_loss_per_interval_and_jitter() {
        let mut r = Received::default();
        for seq in (65_500u16..=65_535).chain(0..74) {
            if (20..30).contains(&seq) {
                continue;
            }
            let i = u32::from(seq.wrapping_sub(65_500));
            r.packet(7, seq, i * 160, 1_000 + i * 160);
        }
        let b = r.block(0, 0).unwrap();
        assert_eq!(b.ssrc, 7);
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.fraction_lost, (10 * 256 / 110) as u8);
        assert_eq!(b.highest_seq, (1 << 16) + 73, "wrapped once");
        assert_eq!(b.jitter, 0);
        for seq in 74..124u16 {
            let i = u32::from(seq.wrapping_sub(65_500));
            // Every other packet 5 ms late: jitter builds up.
            let late = if seq % 2 == 0 { 40 } else { 0 };
            r.packet(7, seq, i * 160, 1_000 + i * 160 + late);
        }
        let b = r.block(0, 0).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
        assert!(b.jitter > 20 && b.jitter <= 40, "{}", b.jitter);
    }

    /// Our SR as the peer reads it; the peer's RR on it echoes LSR and
    /// DLSR, which gives the round trip.
    #[test]
    fn reports_round_trip_and_give_the_rtt() {
        let t0 = ntp(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let at = Instant::now();
        let sent = Sent {
            ssrc: Some(0xabcd),
            packets: 50,
            octets: 8_000,
            last: Some((16_000, at)),
        };
        let mut r = Received::default();
        r.packet(9, 1, 0, 0);
        let mut out = Vec::new();
        report(
            &mut out,
            t0,
            at + Duration::from_millis(20),
            1,
            &sent,
            0,
            r.block(0, 0),
            "dialler@node",
        );
        // The RTP time 20 ms after the last packet's.
        assert_eq!(u32::from_be_bytes(out[16..20].try_into().unwrap()), 16_160);
        assert_eq!(out.len() % 4, 0);
        assert_eq!((out[0], out[1]), (0x81, 200));
        // The peer reads our SR...
        let mut peer = Peer::default();
        assert!(peer.read(&out, t0, None));
        // ...and answers 30 ms later, having held it 10 ms.
        let (lsr, dlsr) = peer.lsr_dlsr(t0 + (10u64 << 32) / 1000);
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&9u32.to_be_bytes());
        Block {
            ssrc: 0xabcd,
            fraction_lost: 64,
            cumulative_lost: -1,
            highest_seq: 50,
            jitter: 80,
            lsr,
            dlsr,
        }
        .write(&mut rr);
        let mut us = Peer::default();
        assert!(us.read(&rr, t0 + (30u64 << 32) / 1000, Some(0xabcd)));
        let b = us.report.unwrap();
        assert_eq!(
            (b.loss(), b.cumulative_lost, b.jitter_ms()),
            (0.25, -1, 10.0)
        );
        let rtt = us.rtt.unwrap().as_secs_f64();
        assert!((0.019..0.021).contains(&rtt), "{rtt}");
        // Not RTCP at all.
        assert!(!Peer::default().read(&[0x80, 0, 0, 0, 1, 2, 3], t0, None));
    }

    #[test]
    fn sender_counts_start_again_with_a_new_source() {
        let at = Instant::now();
        let mut sent = Sent::default();
        sent.packet(7, 160, 160, at);
        sent.packet(7, 320, 160, at);
        assert_eq!((sent.ssrc, sent.packets, sent.octets), (Some(7), 2, 320));
        // The agent leg's next call relays another source.
        sent.packet(9, 80, 80, at);
        assert_eq!((sent.ssrc, sent.packets, sent.octets), (Some(9), 1, 80));
    }

    #[test]
    fn an_rr_when_nothing_was_sent_and_a_bye_at_the_end() {
        let mut out = Vec::new();
        report(
            &mut out,
            0,
            Instant::now(),
            77,
            &Sent::default(),
            0,
            None,
            "x",
        );
        assert_eq!((out[0], out[1]), (0x80, 201));
        assert_eq!(u32::from_be_bytes(out[4..8].try_into().unwrap()), 77);
        bye(&mut out, 77);
        assert_eq!(&out[out.len() - 8..out.len() - 4], &[0x81, 203, 0, 1]);
        assert!(Peer::default().read(&out, 0, None));
    }

    /// RFC 3550 6.4: an SR only while we send; once nothing went out since
    /// the report before last, an RR as the same source.
    #[test]
    fn an_sr_while_sending_then_an_rr_as_the_same_source() {
        let sent = Sent {
            ssrc: Some(0x51),
            packets: 40,
            octets: 6_400,
            last: Some((0, Instant::now())),
        };
        let mut out = Vec::new();
        report(&mut out, 0, Instant::now(), 77, &sent, 10, None, "x");
        assert_eq!(out[1], 200);
        out.clear();
        report(&mut out, 0, Instant::now(), 77, &sent, 40, None, "x");
        assert_eq!(out[1], 201);
        assert_eq!(u32::from_be_bytes(out[4..8].try_into().unwrap()), 0x51);
    }

    /// RFC 3550 A.1: a jump of more than 3,000 is taken for a restart of
    /// the numbering only when the next packet follows it; a lone stray
    /// packet far off is not counted and moves nothing.
    #[test]
    fn a_large_jump_resyncs_on_the_second_packet_and_a_stray_is_ignored() {
        let mut r = Received::default();
        for seq in 1..=10u16 {
            r.packet(7, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        r.packet(7, 40_000, 0, 0);
        for seq in 11..=20u16 {
            r.packet(7, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        let b = r.block(0, 0).unwrap();
        assert_eq!((b.cumulative_lost, b.highest_seq), (0, 20));
        for seq in 5_000..=5_010u16 {
            r.packet(7, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        let b = r.block(0, 0).unwrap();
        assert_eq!((b.cumulative_lost, b.highest_seq), (0, 5_010));
        assert_eq!(b.fraction_lost, 0);
    }

    /// RFC 3550 A.8: transit differences modulo 2^32, so a timestamp that
    /// wraps adds no jitter.
    #[test]
    fn jitter_ignores_the_timestamp_wrapping() {
        let mut r = Received::default();
        r.packet(7, 1, 0xFFFF_FF60, 1_000);
        r.packet(7, 2, 0x0000_0000, 1_160);
        r.packet(7, 3, 0x0000_00A0, 1_320);
        assert_eq!(r.block(0, 0).unwrap().jitter, 0);
    }

    /// Telephone-events share the stream's sequence numbers: counted as
    /// received, not lost.
    #[test]
    fn events_count_as_received_not_lost() {
        let mut r = Received::default();
        for seq in 1..=28u16 {
            if (11..=18).contains(&seq) {
                r.counted(7, seq);
            } else {
                r.packet(7, seq, u32::from(seq) * 160, u32::from(seq) * 160);
            }
        }
        let b = r.block(0, 0).unwrap();
        assert_eq!((b.cumulative_lost, b.fraction_lost), (0, 0));
    }

    /// RFC 3550 6.3.1: the first report after half the interval, each
    /// drawn from 0.5 to 1.5 times and divided by e - 3/2.
    #[test]
    fn report_intervals_are_randomised_and_compensated() {
        for _ in 0..200 {
            let first = next_interval(true).as_secs_f64();
            assert!((1.02..=3.08).contains(&first), "{first}");
            let next = next_interval(false).as_secs_f64();
            assert!((2.05..=6.16).contains(&next), "{next}");
        }
    }

    /// A session on loopback, on paused time: an SR within 1.5 intervals
    /// with what the relay counted and a block on what it received; the
    /// peer's RR on our stream is read (loss, round trip); an RTCP BYE at
    /// the end.
    #[tokio::test(start_paused = true)]
    async fn a_session_reports_reads_the_peers_reports_and_says_bye() {
        use std::sync::{Arc, Mutex};
        let ours = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stats = Arc::new(Mutex::new(LegStats::default()));
        {
            let mut s = stats.lock().unwrap();
            let t = tokio::time::Instant::now().into_std();
            for i in 0..10u16 {
                s.sent.packet(0x5151, u32::from(i) * 160, 160, t);
                s.received
                    .packet(0x7777, i, u32::from(i) * 160, u32::from(i) * 160);
            }
        }
        let clock = crate::clock::Clock::starting_at(
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        );
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let session = tokio::spawn(session(
            ours.clone(),
            peer.local_addr().unwrap(),
            stats.clone(),
            clock,
            "dialler@n1".into(),
            "customer",
            async move {
                let _ = stop_rx.await;
            },
        ));
        let mut buf = [0u8; 1500];
        let (n, from) = tokio::time::timeout(INTERVAL * 2, peer.recv_from(&mut buf))
            .await
            .expect("a report within 1.5 intervals")
            .unwrap();
        let sr = buf[..n].to_vec();
        assert_eq!((sr[0] & 0x1f, sr[1]), (1, 200), "an SR with one block");
        assert_eq!(u32::from_be_bytes(sr[4..8].try_into().unwrap()), 0x5151);
        assert_eq!(
            u32::from_be_bytes(sr[20..24].try_into().unwrap()),
            10,
            "packets"
        );
        assert_eq!(u32::from_be_bytes(sr[28..32].try_into().unwrap()), 0x7777);
        assert!(sr.windows(10).any(|w| w == b"dialler@n1"), "SDES CNAME");
        // The peer answers with an RR on our stream: a quarter lost.
        let mut theirs = Peer::default();
        theirs.read(
            &sr,
            ntp(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            None,
        );
        let (lsr, dlsr) = theirs.lsr_dlsr(ntp(
            std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
        ));
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&0x7777u32.to_be_bytes());
        Block {
            ssrc: 0x5151,
            fraction_lost: 64,
            cumulative_lost: 3,
            highest_seq: 9,
            jitter: 16,
            lsr,
            dlsr,
        }
        .write(&mut rr);
        peer.send_to(&rr, from).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop_tx.send(()).unwrap();
        let heard = session.await.unwrap();
        let b = heard.report.expect("the peer's report read");
        assert_eq!((b.fraction_lost, b.cumulative_lost), (64, 3));
        assert!(heard.rtt.is_some());
        // And a BYE, in a compound packet that begins with a report and
        // carries SDES CNAME (RFC 3550 6.1).
        let mut got_bye = false;
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(100), peer.recv_from(&mut buf)).await
        {
            let p = &buf[..n];
            assert!(p[1] == 200 || p[1] == 201, "a compound packet: {p:?}");
            if p[n - 8..n - 4] == [0x81, 203, 0, 1] {
                assert!(p.windows(10).any(|w| w == b"dialler@n1"), "SDES CNAME");
                got_bye = true;
            }
        }
        assert!(got_bye);
    }
}
