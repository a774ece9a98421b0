//! Relays RTP between two call legs (customer and agent), both ways.
//!
//! Each leg has its own socket, shared (the agent's standing leg outlives
//! the call). A leg's peer address comes from its SDP, and is replaced by
//! the source of each packet that arrives on that leg (symmetric RTP: a
//! NATed phone sends from where it listens). Anything that is not RTP is
//! dropped, and so is what the agent's phone sent between calls (nobody
//! reads the standing leg then): it is not for this customer. Of the
//! customer's audio from before the bridge, only the newest packet goes
//! on: the agent hears the customer at once, without a burst of old audio.
//!
//! DTMF (RFC 4733, [`Dtmf`]): the customer's telephone-events are read
//! (each digit told once) and played on to the agent's phone in its own
//! numbering when its SDP took telephone-events; digits the agent sends go to
//! the customer as telephone-events in the agent's stream, whose sequence
//! numbers the relay moves up past them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::MediaError;
use super::dtmf::{self, Detector, StreamPos, Tones};
use super::rtp::Packet;

/// One side of a relayed call.
#[derive(Debug)]
pub struct Leg {
    /// Our socket for this leg.
    pub socket: Arc<UdpSocket>,
    /// Where the leg's phone listens, from SDP, if known yet.
    pub peer: Option<SocketAddr>,
    /// The G.711 law (payload type 0 or 8) the leg's SDP chose, if known:
    /// audio between legs of different laws is re-encoded on the way.
    pub codec: Option<u8>,
    /// What the relay counts on this leg for its RTCP reports (see
    /// [`super::rtcp::session`]), if it has a session.
    pub stats: Option<Arc<std::sync::Mutex<super::rtcp::LegStats>>>,
    /// The payload type the leg's SDP maps to telephone-event (RFC 4733),
    /// if it took them: events from the other leg are renumbered to it,
    /// or dropped when it took none.
    pub events: Option<u8>,
    /// While set, nothing is sent to this leg: its phone put the call on
    /// hold (its offer `sendonly` or `inactive`, so our answer says
    /// `recvonly` or `inactive`, and RFC 3264 6.1 forbids sending).
    pub hold: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Leg {
    /// Whether this leg's phone has put the call on hold.
    fn on_hold(&self) -> bool {
        self.hold
            .as_ref()
            .is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Renumbers a telephone-event packet from a leg that maps events to
/// `from` for one that maps them to `to`; false when it is an event and
/// the receiving leg takes none (it is not sent).
fn map_event(buf: &mut [u8], from: Option<u8>, to: Option<u8>) -> bool {
    let Some(from) = from else { return true };
    if buf.len() < 12 || buf[1] & 0x7f != from {
        return true;
    }
    match to {
        Some(to) => {
            buf[1] = (buf[1] & 0x80) | (to & 0x7f);
            true
        }
        None => false,
    }
}

/// Counts a packet that arrived on `leg` ([`super::player::count_received`]).
fn count_in(leg: &Leg, buf: &[u8], event_pt: Option<u8>, base: tokio::time::Instant) {
    let Some(st) = &leg.stats else { return };
    let Ok(p) = Packet::parse(buf) else { return };
    super::player::count_received(st, &p, event_pt, base);
}

/// Counts a packet sent on `leg`.
fn count_out(leg: &Leg, buf: &[u8]) {
    let Some(st) = &leg.stats else { return };
    let Ok(p) = Packet::parse(buf) else { return };
    if let Ok(mut s) = st.lock() {
        s.sent.packet(
            p.ssrc,
            p.timestamp,
            p.payload.len(),
            tokio::time::Instant::now().into_std(),
        );
    }
}

/// Re-encodes a G.711 packet of law `from` to law `to` in place (payload
/// and payload type) when both are known and differ; anything else
/// (another payload type, telephone-events) is left as it is.
fn recode(buf: &mut [u8], from: Option<u8>, to: Option<u8>) {
    let (Some(from), Some(to)) = (from, to) else {
        return;
    };
    if from == to {
        return;
    }
    let Ok(p) = Packet::parse(buf) else {
        return;
    };
    if p.payload_type != from {
        return;
    }
    let start = p.payload.as_ptr() as usize - buf.as_ptr() as usize;
    let end = start + p.payload.len();
    if super::g711::transcode(from, to, &mut buf[start..end]).is_ok() {
        buf[1] = (buf[1] & 0x80) | (to & 0x7f);
    }
}

/// What a relay carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Packets from leg A sent on to leg B.
    pub a_to_b: u64,
    /// Packets from leg B sent on to leg A.
    pub b_to_a: u64,
    /// Packets dropped (not RTP, the other side's address unknown, or a
    /// send that failed: one lost packet does not end the call's audio).
    pub dropped: u64,
    /// Packets held from before the bridge, dropped: all the agent leg's,
    /// and all but the newest of the customer's.
    pub stale: u64,
    /// Telephone-event packets from the customer (each digit told once).
    pub dtmf_in: u64,
    /// Of those, the ones played on to the agent's phone (in its
    /// telephone-event numbering; a phone that took none gets none).
    pub dtmf_to_agent: u64,
    /// Telephone-event packets sent to the customer.
    pub dtmf_out: u64,
    /// Packets not sent because the leg they were for had put the call on
    /// hold ([`Leg::hold`]).
    pub held: u64,
}

/// DTMF on a relayed call (RFC 4733), when the customer's leg takes
/// telephone-events ([`Leg::events`]; nothing is read or sent otherwise).
pub struct Dtmf {
    /// Digits to send to the customer, checked
    /// ([`super::dtmf::check_digits`]).
    pub send: mpsc::UnboundedReceiver<String>,
    /// Told each digit the customer presses, as it starts.
    pub heard: Box<dyn FnMut(char) + Send>,
}

/// Where the stream toward the customer stands: the last packet sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    at: std::time::Instant,
}

impl Sent {
    /// The position the next packet takes at `now`.
    fn next(self, now: std::time::Instant) -> StreamPos {
        let ms = now.saturating_duration_since(self.at).as_millis() as u32;
        StreamPos {
            ssrc: self.ssrc,
            seq: self.seq.wrapping_add(1),
            timestamp: self.timestamp.wrapping_add(ms.wrapping_mul(8)),
        }
    }
}

/// The most stale packets read off the agent's leg before relaying (a full
/// socket buffer holds far fewer).
const STALE_LIMIT: u64 = 100_000;

/// Relays between the customer's leg `a` and the agent's leg `b` until
/// `stop` completes, then returns the counts.
pub async fn relay(a: Leg, b: Leg, stop: impl Future<Output = ()>) -> Result<Relayed, MediaError> {
    relay_with_dtmf(a, b, None, stop).await
}

/// [`relay`], with the call's DTMF both ways when `dtmf` is given.
pub async fn relay_with_dtmf(
    mut a: Leg,
    mut b: Leg,
    dtmf: Option<Dtmf>,
    stop: impl Future<Output = ()>,
) -> Result<Relayed, MediaError> {
    let (event_pt, mut send, mut heard) = match (dtmf, a.events) {
        (Some(Dtmf { send, heard }), Some(pt)) => (Some(pt), Some(send), Some(heard)),
        _ => (None, None, None),
    };
    let mut detector = Detector::default();
    let mut tones = Tones::default();
    let mut sent: Option<Sent> = None;
    // Events put into the agent's stream: its later packets' sequence
    // numbers go up by as many.
    let mut seq_offset: u16 = 0;
    let base = tokio::time::Instant::now();
    let mut stats = Relayed::default();
    let mut buf_a = vec![0u8; 2048];
    let mut buf_b = vec![0u8; 2048];
    while stats.stale < STALE_LIMIT && b.socket.try_recv_from(&mut buf_b).is_ok() {
        stats.stale += 1;
    }
    // The customer has talked since the answer: of what queued, only the
    // newest packet goes on, so the agent hears the customer at once and
    // no burst of old audio fills the phone's jitter buffer.
    let mut newest = None;
    while stats.stale < 2 * STALE_LIMIT
        && let Ok((n, from)) = a.socket.try_recv_from(&mut buf_a)
    {
        a.peer = Some(from);
        match Packet::parse(&buf_a[..n]) {
            // A key pressed before the bridge is not the agent's to hear.
            Ok(p) if a.events == Some(p.payload_type) => stats.stale += 1,
            Ok(_) => {
                if newest.is_some() {
                    stats.stale += 1;
                }
                // Kept apart: the next read reuses the buffer.
                newest = Some(buf_a[..n].to_vec());
            }
            Err(_) => stats.dropped += 1,
        }
    }
    if let (Some(mut pkt), Some(to)) = (newest, b.peer)
        && {
            recode(&mut pkt, a.codec, b.codec);
            b.socket.send_to(&pkt, to).await.is_ok()
        }
    {
        count_out(&b, &pkt);
        stats.a_to_b += 1;
    }
    tokio::pin!(stop);
    loop {
        let tone_at = tones.next_at().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = &mut stop => return Ok(stats),
            r = a.socket.recv_from(&mut buf_a) => {
                let (n, from) = r?;
                a.peer = Some(from);
                count_in(&a, &buf_a[..n], a.events, base);
                let (is_event, reflected) = match Packet::parse(&buf_a[..n]) {
                    Err(_) => {
                        stats.dropped += 1;
                        continue;
                    }
                    Ok(p) if a.events == Some(p.payload_type) => {
                        stats.dtmf_in += 1;
                        if let Some(d) = detector.packet(&p)
                            && let Some(tell) = heard.as_mut()
                        {
                            tell(d);
                        }
                        // Events in the very stream we send the customer
                        // came back from a far end that echoes: told, but
                        // not played to the agent (who sent them), or they
                        // would go round between two echoing ends for ever.
                        (true, sent.is_some_and(|s| s.ssrc == p.ssrc))
                    }
                    Ok(_) => (false, false),
                };
                // The customer's keys are played on to the agent's phone in
                // its numbering when it takes telephone-events (a phone that
                // takes none gets nothing: the digits are shown instead).
                if reflected || !map_event(&mut buf_a[..n], a.events, b.events) {
                    continue;
                }
                if b.on_hold() {
                    stats.held += 1;
                    continue;
                }
                if let Some(to) = b.peer
                    && {
                        recode(&mut buf_a[..n], a.codec, b.codec);
                        b.socket.send_to(&buf_a[..n], to).await.is_ok()
                    }
                {
                    count_out(&b, &buf_a[..n]);
                    stats.a_to_b += 1;
                    if is_event {
                        stats.dtmf_to_agent += 1;
                    }
                } else {
                    stats.dropped += 1;
                }
            }
            r = b.socket.recv_from(&mut buf_b) => {
                let (n, from) = r?;
                b.peer = Some(from);
                count_in(&b, &buf_b[..n], b.events, base);
                let Ok((ssrc, seq, timestamp)) =
                    Packet::parse(&buf_b[..n]).map(|p| (p.ssrc, p.sequence, p.timestamp))
                else {
                    stats.dropped += 1;
                    continue;
                };
                let seq = seq.wrapping_add(seq_offset);
                if seq_offset != 0 {
                    buf_b[2..4].copy_from_slice(&seq.to_be_bytes());
                }
                sent = Some(Sent {
                    ssrc,
                    seq,
                    timestamp,
                    at: tokio::time::Instant::now().into_std(),
                });
                recode(&mut buf_b[..n], b.codec, a.codec);
                // The agent's phone's own keys go on, in the customer's
                // numbering.
                if !map_event(&mut buf_b[..n], b.events, a.events) {
                    stats.dropped += 1;
                    continue;
                }
                if a.on_hold() {
                    stats.held += 1;
                    continue;
                }
                if let Some(to) = a.peer
                    && a.socket.send_to(&buf_b[..n], to).await.is_ok()
                {
                    count_out(&a, &buf_b[..n]);
                    stats.b_to_a += 1;
                } else {
                    stats.dropped += 1;
                }
            }
            digits = async {
                match send.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match digits {
                Some(d) => tones.push(&d),
                None => send = None,
            },
            () = async {
                match tone_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = tokio::time::Instant::now().into_std();
                let Some(pt) = event_pt else { continue };
                // Before any agent audio: a stream of the relay's own.
                let base = *sent.get_or_insert_with(|| Sent {
                    ssrc: rand::random(),
                    seq: rand::random(),
                    timestamp: rand::random(),
                    at: now,
                });
                let mut pos = base.next(now);
                let mut out = Vec::with_capacity(16);
                while let Some((e, marker, ts)) = tones.poll(now, pos) {
                    // A customer who put the call on hold takes nothing
                    // from us (RFC 3264 6.1): the keys are dropped.
                    if a.on_hold() {
                        stats.held += 1;
                        continue;
                    }
                    out.clear();
                    dtmf::write_packet(&mut out, pt, marker, pos, ts, e);
                    if let Some(to) = a.peer
                        && a.socket.send_to(&out, to).await.is_ok()
                    {
                        count_out(&a, &out);
                        stats.dtmf_out += 1;
                    }
                    sent = Some(Sent {
                        seq: pos.seq,
                        ..base
                    });
                    seq_offset = seq_offset.wrapping_add(1);
                    pos.seq = pos.seq.wrapping_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::Packetizer;
    use std::time::Duration;

    async fn sock() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    async fn shared() -> Arc<UdpSocket> {
        Arc::new(sock().await)
    }

    /// A leg on `socket` to `peer`, law and counts unknown.
    fn leg(socket: Arc<UdpSocket>, peer: Option<SocketAddr>) -> Leg {
        Leg {
            socket,
            peer,
            codec: None,
            stats: None,
            events: None,
            hold: None,
        }
    }

    /// A DTMF relay between `a` and `b`: digits to send, the digits told,
    /// and its stop.
    struct DtmfRelay {
        task: tokio::task::JoinHandle<Result<Relayed, MediaError>>,
        send: mpsc::UnboundedSender<String>,
        heard: Arc<std::sync::Mutex<String>>,
        stop: tokio::sync::oneshot::Sender<()>,
    }

    fn dtmf_relay(a: Leg, b: Leg) -> DtmfRelay {
        let (send, send_rx) = mpsc::unbounded_channel();
        let heard = Arc::new(std::sync::Mutex::new(String::new()));
        let h = heard.clone();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(relay_with_dtmf(
            a,
            b,
            Some(Dtmf {
                send: send_rx,
                heard: Box::new(move |d| h.lock().unwrap().push(d)),
            }),
            async move {
                let _ = stop_rx.await;
            },
        ));
        DtmfRelay {
            task,
            send,
            heard,
            stop,
        }
    }

    impl DtmfRelay {
        async fn stop(self) -> Relayed {
            let _ = self.stop.send(());
            self.task.await.unwrap().unwrap()
        }
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = Packetizer::new(0, 1, seq, 0);
        let mut out = Vec::new();
        p.packet(&[100; 160], &mut out).unwrap();
        out
    }

    async fn recv(s: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf))
            .await
            .expect("relayed packet")
            .unwrap();
        buf[..n].to_vec()
    }

    /// A customer who put the call on hold is sent nothing until they
    /// resume (RFC 3264 6.1: our answer said recvonly); their own audio
    /// still reaches the agent.
    #[tokio::test]
    async fn nothing_is_sent_to_a_leg_that_put_the_call_on_hold() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (customer, agent) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let hold = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                hold: Some(hold.clone()),
                ..leg(leg_a, Some(customer.local_addr().unwrap()))
            },
            leg(leg_b, Some(agent.local_addr().unwrap())),
            async move {
                let _ = stop_rx.await;
            },
        ));
        agent.send_to(&rtp(1), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(1));
        hold.store(true, Ordering::Relaxed);
        agent.send_to(&rtp(2), b_addr).await.unwrap();
        customer.send_to(&rtp(3), a_addr).await.unwrap();
        assert_eq!(recv(&agent).await, rtp(3), "the held side still heard");
        hold.store(false, Ordering::Relaxed);
        agent.send_to(&rtp(4), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(4), "2 was never sent");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.held, stats.b_to_a), (1, 2));
    }

    #[tokio::test]
    async fn audio_flows_both_ways_and_junk_is_dropped() {
        let (customer, agent) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            leg(leg_a, None),
            leg(leg_b, Some(agent.local_addr().unwrap())),
            async move {
                let _ = stop_rx.await;
            },
        ));
        customer.send_to(&rtp(1), a_addr).await.unwrap();
        assert_eq!(recv(&agent).await, rtp(1));
        agent.send_to(&rtp(2), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(2), "customer address latched");
        customer.send_to(b"not rtp", a_addr).await.unwrap();
        customer.send_to(&rtp(3), a_addr).await.unwrap();
        assert_eq!(recv(&agent).await, rtp(3));
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!(
            stats,
            Relayed {
                a_to_b: 2,
                b_to_a: 1,
                dropped: 1,
                stale: 0,
                ..Relayed::default()
            }
        );
    }

    /// The customer talked between the answer and the bridge: the agent
    /// gets the newest packet at once, not the backlog.
    #[tokio::test]
    async fn only_the_customers_newest_packet_from_before_the_bridge_goes_on() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let a_addr = leg_a.local_addr().unwrap();
        for seq in 0..20 {
            customer.send_to(&rtp(seq), a_addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            leg(leg_a, None),
            leg(leg_b, Some(phone.local_addr().unwrap())),
            async move {
                let _ = stop_rx.await;
            },
        ));
        assert_eq!(recv(&phone).await, rtp(19), "the newest first");
        customer.send_to(&rtp(20), a_addr).await.unwrap();
        assert_eq!(recv(&phone).await, rtp(20), "then the live audio");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.stale, stats.a_to_b), (19, 2));
    }

    /// A key the customer pressed before the bridge is not relayed, and
    /// does not stand in for the newest audio.
    #[tokio::test]
    async fn a_key_from_before_the_bridge_is_not_relayed() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let a_addr = leg_a.local_addr().unwrap();
        customer.send_to(&rtp(7), a_addr).await.unwrap();
        let payload = dtmf::Event {
            event: 1,
            end: true,
            volume: 10,
            duration: 800,
        }
        .bytes();
        let mut key = Vec::new();
        Packet {
            payload_type: 101,
            marker: false,
            sequence: 8,
            timestamp: 1_000,
            ssrc: 1,
            payload: &payload,
        }
        .write(&mut key);
        customer.send_to(&key, a_addr).await.unwrap();
        customer.send_to(b"junk", a_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                events: Some(101),
                ..leg(leg_a, None)
            },
            Leg {
                events: Some(101),
                ..leg(leg_b, Some(phone.local_addr().unwrap()))
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        assert_eq!(recv(&phone).await, rtp(7), "the newest audio");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.a_to_b, stats.stale, stats.dropped), (1, 1, 1));
    }

    /// The agent's phone talked between calls: none of it reaches the
    /// next customer; what it says once bridged does.
    #[tokio::test]
    async fn the_agent_legs_audio_from_between_calls_is_not_relayed() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let b_addr = leg_b.local_addr().unwrap();
        for seq in 0..20 {
            phone.send_to(&rtp(seq), b_addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            leg(leg_a, Some(customer.local_addr().unwrap())),
            leg(leg_b, Some(phone.local_addr().unwrap())),
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        phone.send_to(&rtp(1000), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(1000), "stale audio relayed");
        stop_tx.send(()).unwrap();
        let stats = relay.await.unwrap().unwrap();
        assert_eq!((stats.stale, stats.b_to_a), (20, 1));
    }

    /// RFC 3264 6.1: a customer who put the call on hold takes nothing
    /// from us, telephone-events included.
    #[tokio::test]
    async fn no_dtmf_goes_to_a_customer_on_hold() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let hold = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = dtmf_relay(
            Leg {
                events: Some(101),
                hold: Some(hold.clone()),
                ..leg(leg_a, Some(customer.local_addr().unwrap()))
            },
            leg(leg_b, Some(phone.local_addr().unwrap())),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        r.send.send("5".into()).unwrap();
        let mut buf = [0u8; 2048];
        let got =
            tokio::time::timeout(Duration::from_millis(400), customer.recv_from(&mut buf)).await;
        assert!(got.is_err(), "nothing to a customer on hold");
        let stats = r.stop().await;
        assert_eq!(stats.dtmf_out, 0);
        assert_eq!(stats.held, 8);
    }

    /// Digits the agent sends reach the customer as RFC 4733 events in
    /// the agent's stream (its SSRC, the next sequence numbers, one
    /// timestamp per digit), and the agent's later packets follow on; the
    /// customer's own events are told once each and not relayed.
    #[tokio::test]
    async fn dtmf_goes_to_the_customer_in_the_agents_stream_and_back_as_digits() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let r = dtmf_relay(
            Leg {
                events: Some(101),
                ..leg(leg_a, Some(customer.local_addr().unwrap()))
            },
            // The agent's phone numbers its own events 96.
            Leg {
                events: Some(96),
                ..leg(leg_b, Some(phone.local_addr().unwrap()))
            },
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        phone.send_to(&rtp(10), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(10));
        r.send.send("5".into()).unwrap();
        let mut events = Vec::new();
        for _ in 0..8 {
            let bytes = recv(&customer).await;
            let p = Packet::parse(&bytes).unwrap();
            let e = dtmf::Event::parse(p.payload).unwrap();
            events.push((p.payload_type, p.ssrc, p.sequence, p.marker, e.event, e.end));
        }
        assert!(
            events.iter().all(|e| e.0 == 101 && e.1 == 1 && e.4 == 5),
            "{events:?}"
        );
        let seqs: Vec<u16> = events.iter().map(|e| e.2).collect();
        assert_eq!(seqs, (11..19).collect::<Vec<u16>>());
        assert!(events[0].3, "marker on the first");
        assert_eq!(
            events.iter().filter(|e| e.5).count(),
            3,
            "three end packets"
        );
        // The agent's next packet follows the events.
        phone.send_to(&rtp(11), b_addr).await.unwrap();
        let next = recv(&customer).await;
        assert_eq!(Packet::parse(&next).unwrap().sequence, 19);
        // A key pressed on the agent's own phone (its number 96) reaches
        // the customer in the customer's numbering (101).
        let mut own = Vec::new();
        let payload = dtmf::Event {
            event: 3,
            end: false,
            volume: 10,
            duration: 160,
        }
        .bytes();
        Packet {
            payload_type: 96,
            marker: true,
            sequence: 12,
            timestamp: 1_920,
            ssrc: 1,
            payload: &payload,
        }
        .write(&mut own);
        phone.send_to(&own, b_addr).await.unwrap();
        let got = recv(&customer).await;
        let p = Packet::parse(&got).unwrap();
        assert_eq!((p.payload_type, p.marker, p.sequence), (101, true, 20));
        // The customer presses 7 (its three end packets repeat it): told
        // once, and played on to the agent's phone in its numbering (96).
        for end in [false, true, true, true] {
            let payload = dtmf::Event {
                event: 7,
                end,
                volume: 10,
                duration: 800,
            }
            .bytes();
            let mut out = Vec::new();
            Packet {
                payload_type: 101,
                marker: !end,
                sequence: 40,
                timestamp: 4_000,
                ssrc: 9,
                payload: &payload,
            }
            .write(&mut out);
            customer.send_to(&out, a_addr).await.unwrap();
        }
        customer.send_to(&rtp(41), a_addr).await.unwrap();
        let mut at_phone = Vec::new();
        for _ in 0..4 {
            let bytes = recv(&phone).await;
            let p = Packet::parse(&bytes).unwrap();
            let e = dtmf::Event::parse(p.payload).unwrap();
            at_phone.push((p.payload_type, p.ssrc, p.sequence, e.event, e.end));
        }
        assert_eq!(
            at_phone,
            vec![
                (96, 9, 40, 7, false),
                (96, 9, 40, 7, true),
                (96, 9, 40, 7, true),
                (96, 9, 40, 7, true)
            ]
        );
        assert_eq!(recv(&phone).await, rtp(41), "then the audio");
        assert_eq!(r.heard.lock().unwrap().as_str(), "7");
        let stats = r.stop().await;
        assert_eq!(
            (stats.dtmf_out, stats.dtmf_in, stats.dtmf_to_agent),
            (8, 4, 4)
        );
    }

    /// A far end that echoes sends the agent's own digits back in the
    /// agent's stream: they are told (they are what the customer's side
    /// played) but not played back to the agent's phone, or they would
    /// go round between two echoing ends for ever.
    #[tokio::test]
    async fn the_agents_own_digits_echoed_back_are_not_played_to_the_phone() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let r = dtmf_relay(
            Leg {
                events: Some(101),
                ..leg(leg_a, Some(customer.local_addr().unwrap()))
            },
            Leg {
                events: Some(101),
                ..leg(leg_b, Some(phone.local_addr().unwrap()))
            },
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        phone.send_to(&rtp(10), b_addr).await.unwrap();
        assert_eq!(recv(&customer).await, rtp(10));
        r.send.send("9".into()).unwrap();
        for _ in 0..8 {
            let echoed = recv(&customer).await;
            customer.send_to(&echoed, a_addr).await.unwrap();
        }
        let mut audio = rtp(50);
        audio[8..12].copy_from_slice(&7u32.to_be_bytes());
        customer.send_to(&audio, a_addr).await.unwrap();
        assert_eq!(recv(&phone).await, audio, "the audio first, no events");
        assert_eq!(r.heard.lock().unwrap().as_str(), "9");
        let stats = r.stop().await;
        assert_eq!(
            (stats.dtmf_out, stats.dtmf_in, stats.dtmf_to_agent),
            (8, 8, 0)
        );
    }

    /// An agent's phone whose SDP took no telephone-events gets none of
    /// the customer's keys (they are still told as digits), only audio.
    #[tokio::test]
    async fn a_phone_without_telephone_events_gets_the_customers_digits_as_text_only() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let a_addr = leg_a.local_addr().unwrap();
        let r = dtmf_relay(
            Leg {
                events: Some(101),
                ..leg(leg_a, None)
            },
            leg(leg_b, Some(phone.local_addr().unwrap())),
        );
        let payload = dtmf::Event {
            event: 11,
            end: false,
            volume: 10,
            duration: 160,
        }
        .bytes();
        let mut out = Vec::new();
        Packet {
            payload_type: 101,
            marker: true,
            sequence: 5,
            timestamp: 800,
            ssrc: 1,
            payload: &payload,
        }
        .write(&mut out);
        customer.send_to(&out, a_addr).await.unwrap();
        customer.send_to(&rtp(6), a_addr).await.unwrap();
        assert_eq!(recv(&phone).await, rtp(6), "the audio, not the event");
        assert_eq!(r.heard.lock().unwrap().as_str(), "#");
        let stats = r.stop().await;
        assert_eq!(
            (
                stats.dtmf_in,
                stats.dtmf_to_agent,
                stats.a_to_b,
                stats.dropped
            ),
            (1, 0, 1, 0)
        );
    }

    /// A customer on A-law and an agent's phone on µ-law: each hears the
    /// other in its own law, the same sound; telephone-events are not
    /// touched.
    #[tokio::test]
    async fn audio_between_legs_of_different_laws_is_re_encoded() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                socket: leg_a,
                peer: Some(customer.local_addr().unwrap()),
                codec: Some(8),
                stats: None,
                events: None,
                hold: None,
            },
            Leg {
                socket: leg_b,
                peer: Some(phone.local_addr().unwrap()),
                codec: Some(0),
                stats: None,
                events: None,
                hold: None,
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let tone: Vec<i16> = (0..160)
            .map(|i| ((f64::from(i) / 8.0).sin() * 6000.0) as i16)
            .collect();
        let packet = |pt: u8| {
            let mut p = Packetizer::new(pt, 5, 1, 0);
            let mut out = Vec::new();
            p.packet(&tone, &mut out).unwrap();
            out
        };
        let close = |pt: u8, bytes: &[u8]| {
            let p = Packet::parse(bytes).unwrap();
            assert_eq!(p.payload_type, pt);
            let mut got = Vec::new();
            crate::media::g711::decode(pt, p.payload, &mut got).unwrap();
            tone.iter()
                .zip(&got)
                .all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() < 600)
        };
        customer.send_to(&packet(8), a_addr).await.unwrap();
        assert!(close(0, &recv(&phone).await), "the agent hears µ-law");
        phone.send_to(&packet(0), b_addr).await.unwrap();
        assert!(close(8, &recv(&customer).await), "the customer hears A-law");
        stop_tx.send(()).unwrap();
        relay.await.unwrap().unwrap();
    }

    /// The customer leg's counts for RTCP: packets received from the
    /// customer (telephone-events aside) and sent to it.
    #[tokio::test]
    async fn the_customer_legs_traffic_is_counted_for_rtcp() {
        let (customer, phone) = (sock().await, sock().await);
        let (leg_a, leg_b) = (shared().await, shared().await);
        let (a_addr, b_addr) = (leg_a.local_addr().unwrap(), leg_b.local_addr().unwrap());
        let counts = Arc::new(std::sync::Mutex::new(
            super::super::rtcp::LegStats::default(),
        ));
        // The agent leg's own session counts its side (RFC 3550 6.4: what
        // it receives from the phone, what it sends the phone).
        let agent_counts = Arc::new(std::sync::Mutex::new(
            super::super::rtcp::LegStats::default(),
        ));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let relay = tokio::spawn(relay(
            Leg {
                socket: leg_a,
                peer: Some(customer.local_addr().unwrap()),
                codec: None,
                stats: Some(counts.clone()),
                events: None,
                hold: None,
            },
            Leg {
                stats: Some(agent_counts.clone()),
                ..leg(leg_b, Some(phone.local_addr().unwrap()))
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        for seq in 1..=3 {
            customer.send_to(&rtp(seq), a_addr).await.unwrap();
            recv(&phone).await;
        }
        for seq in 10..=11 {
            phone.send_to(&rtp(seq), b_addr).await.unwrap();
            recv(&customer).await;
        }
        stop_tx.send(()).unwrap();
        relay.await.unwrap().unwrap();
        let c = counts.lock().unwrap();
        assert_eq!(c.received.packets, 3);
        assert_eq!(
            (c.sent.packets, c.sent.octets, c.sent.ssrc),
            (2, 320, Some(1))
        );
        let g = agent_counts.lock().unwrap();
        assert_eq!((g.received.packets, g.sent.packets), (2, 3));
    }
}
