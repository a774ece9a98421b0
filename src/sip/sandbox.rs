//! The built-in sandbox provider (`dialler sandbox`): a SIP UAS over UDP in
//! which every INVITE draws an outcome, with the same model as
//! sipp/provider.xml (answer after a random ring, then the callee
//! hangs up after an exponential talk time; busy 486; no answer, ringing
//! until CANCEL then 487; rejected 603; unavailable 503). With a talk mean
//! of zero it is an agent phone that holds until the caller's BYE.
//!
//! [`Sandbox`] is sans-IO like [`super::uac::Endpoint`]: it owns the server
//! transactions (retransmitting the 200 until ACK, and final responses on
//! timer G until timer H) and its own BYE client transaction. [`serve`] is
//! its tokio driver, with an RTP echo on the media port.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::net::UdpSocket;

use super::message::{self, Message, Method, Request, Response};
use super::uac::Timers;
use super::{SipError, sdp};

/// Outcome weights (any non-negative numbers; they are normalised).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Answered, then the callee hangs up.
    pub answer: f64,
    /// 486 Busy Here.
    pub busy: f64,
    /// Rings until CANCEL (then 487).
    pub no_answer: f64,
    /// 603 Decline.
    pub reject: f64,
    /// 503 Service Unavailable.
    pub unavailable: f64,
}

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Outcome weights.
    pub weights: Weights,
    /// Post-dial delay: the network's call set-up between the INVITE
    /// (answered 100 at once) and the 180; the ring time starts at the
    /// 180.
    pub setup: Duration,
    /// Uniform ring time before the final response.
    pub ring: (Duration, Duration),
    /// Mean of the exponential talk time; zero holds until the caller's BYE.
    pub talk_mean: Duration,
    /// Seed of the outcome draws.
    pub seed: u64,
    /// RFC 3261 timers.
    pub timers: Timers,
    /// A no-answer call that is never cancelled gets 480 after this long.
    pub max_ring: Duration,
    /// The called party presses this key (an RFC 4733 telephone-event,
    /// payload type 101) once they have heard [`PRESS_AFTER`] packets of
    /// sound from a caller's media source: as a person asks for no more
    /// calls during an abandoned-call message.
    pub press_key: Option<char>,
    /// Keys are sounded as tones in the audio (100 ms of the pair in place
    /// of what is echoed) and the answer offers no telephone-event, as a
    /// line whose gateway does not do RFC 4733.
    pub keys_as_tones: bool,
    /// With [`SandboxConfig::keys_as_tones`], the answer still offers
    /// telephone-event: a gateway that passes the tones through although
    /// it negotiated RFC 4733.
    pub tones_despite_events: bool,
}

/// Packets of sound (20 ms each) heard before [`SandboxConfig::press_key`]
/// is pressed.
pub const PRESS_AFTER: u64 = 25;

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            weights: Weights {
                answer: 0.6,
                busy: 0.15,
                no_answer: 0.15,
                reject: 0.05,
                unavailable: 0.05,
            },
            setup: Duration::ZERO,
            ring: (Duration::from_secs(2), Duration::from_secs(8)),
            talk_mean: Duration::from_secs(30),
            seed: 1,
            timers: Timers::default(),
            max_ring: Duration::from_secs(180),
            press_key: None,
            keys_as_tones: false,
            tones_despite_events: false,
        }
    }
}

impl SandboxConfig {
    /// Agents' phones: every call answered after a short ring and held
    /// until the caller's BYE.
    pub fn agent_phones(seed: u64) -> SandboxConfig {
        SandboxConfig {
            weights: Weights {
                answer: 1.0,
                busy: 0.0,
                no_answer: 0.0,
                reject: 0.0,
                unavailable: 0.0,
            },
            ring: (Duration::from_millis(200), Duration::from_millis(400)),
            talk_mean: Duration::ZERO,
            seed,
            ..SandboxConfig::default()
        }
    }
}

/// What the sandbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SandboxStats {
    /// New INVITEs.
    pub invites: u64,
    /// 200 OK sent.
    pub answered: u64,
    /// 486 sent.
    pub busy: u64,
    /// Cancelled while ringing (487 sent).
    pub cancelled: u64,
    /// The shortest time a cancelled call rang, from its 180 to the
    /// CANCEL, ms (0 when cancelled before the 180): whether the caller
    /// let the phone ring its full time (US TSR: at least 15 s).
    pub shortest_cancelled_ring_ms: Option<u64>,
    /// 603 sent.
    pub rejected: u64,
    /// 503 sent.
    pub unavailable: u64,
    /// Calls the caller hung up (BYE received).
    pub caller_byes: u64,
    /// Calls we hung up (BYE sent).
    pub our_byes: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
    /// RTP packets echoed back.
    pub rtp_echoed: u64,
    /// Of those, G.711 packets with sound in them (a peak above -40 dBFS):
    /// the far end was heard, not just sent silence.
    pub rtp_voiced: u64,
    /// Calls answered and confirmed (our 200 ACKed) and not yet ended when
    /// the sandbox stopped: legs the caller left up.
    pub up_at_stop: u64,
    /// RTCP compound packets (an SR or RR first) callers sent to the port
    /// above the RTP one (when the sandbox listens there).
    pub rtcp_reports: u64,
    /// Keys pressed ([`SandboxConfig::press_key`]).
    pub keys_pressed: u64,
}

/// Whether a G.711 RTP packet carries sound (a sample above -40 dBFS).
fn voiced(packet: &[u8]) -> bool {
    let Ok(p) = crate::media::rtp::Packet::parse(packet) else {
        return false;
    };
    let mut samples = Vec::with_capacity(p.payload.len());
    if crate::media::g711::decode(p.payload_type, p.payload, &mut samples).is_err() {
        return false;
    }
    samples.iter().any(|s| s.unsigned_abs() > 328)
}

/// Packets (20 ms each) a press sounded as tones lasts.
const TONE_PACKETS: usize = 5;

/// Puts packet `k` of a press of `digit` sounded as tones in place of
/// G.711 packet `packet`'s audio (its payload type and length kept).
fn sound_key(packet: &mut [u8], digit: char, k: usize) {
    let Ok(p) = crate::media::rtp::Packet::parse(packet) else {
        return;
    };
    let (pt, len) = (p.payload_type, p.payload.len());
    let mut samples = vec![0i16; len];
    let mut payload = Vec::with_capacity(len);
    if !crate::media::tones::sound(digit, k * len, &mut samples)
        || crate::media::g711::encode(pt, &samples, &mut payload).is_err()
    {
        return;
    }
    let start = packet.len() - len;
    packet[start..].copy_from_slice(&payload);
}

/// The packets of one press of `digit` (RFC 4733 2.5): the start with the
/// marker bit, an update, and the end packet three times, one event (one
/// timestamp) of source `ssrc` from sequence number `seq`.
fn key_press(digit: char, ssrc: u32, seq: u16) -> Vec<Vec<u8>> {
    use crate::media::dtmf::{self, Event, StreamPos};
    let Some(event) = dtmf::event_of(digit) else {
        return Vec::new();
    };
    let durations = [
        (160, false),
        (320, false),
        (800, true),
        (800, true),
        (800, true),
    ];
    durations
        .iter()
        .enumerate()
        .map(|(i, &(duration, end))| {
            let mut out = Vec::new();
            let pos = StreamPos {
                ssrc,
                seq: seq.wrapping_add(i as u16),
                timestamp: 8000,
            };
            let e = Event {
                event,
                end,
                volume: 10,
                duration,
            };
            dtmf::write_packet(
                &mut out,
                sdp::PT_TELEPHONE_EVENT,
                i == 0,
                pos,
                pos.timestamp,
                e,
            );
            out
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    Answer,
    Busy,
    NoAnswer,
    Reject,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ringing,
    Answered,
    Confirmed,
    Completed,
    Closing,
    Done,
}

struct Call {
    peer: SocketAddr,
    invite: Request,
    to_tag: String,
    draw: Draw,
    state: State,
    last_response: Vec<u8>,
    /// While set up: when the 180 goes, and the ring time after it.
    ring_at: Option<(Instant, Duration)>,
    /// When the 180 went.
    rang_at: Option<Instant>,
    ring_until: Option<Instant>,
    retx: Option<(Instant, Duration)>,
    give_up: Option<Instant>,
    hangup_at: Option<Instant>,
    bye: Option<(Vec<u8>, Instant, Duration, Instant)>,
    bye_reply: Option<Vec<u8>>,
    linger: Option<Instant>,
    scheduled: Option<Instant>,
}

impl Call {
    fn deadline(&self) -> Option<Instant> {
        [
            self.ring_at.map(|(t, _)| t),
            self.ring_until,
            self.retx.map(|(t, _)| t),
            self.give_up,
            self.hangup_at,
            self.bye.as_ref().map(|(_, e, _, f)| (*e).min(*f)),
            self.linger,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The sandbox UAS, sans-IO.
pub struct Sandbox {
    cfg: SandboxConfig,
    local: SocketAddr,
    media: SocketAddr,
    rng: StdRng,
    calls: HashMap<String, Call>,
    timers: BinaryHeap<Reverse<(Instant, String)>>,
    tx: VecDeque<(SocketAddr, Vec<u8>)>,
    stats: SandboxStats,
}

impl Sandbox {
    /// A sandbox answering at `local` with RTP at `media`.
    pub fn new(cfg: SandboxConfig, local: SocketAddr, media: SocketAddr) -> Sandbox {
        Sandbox {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            local,
            media,
            calls: HashMap::new(),
            timers: BinaryHeap::new(),
            tx: VecDeque::new(),
            stats: SandboxStats::default(),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> SandboxStats {
        self.stats
    }

    /// Calls still known (including those lingering for retransmissions).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Calls confirmed (our 200 ACKed) and not yet ended.
    pub fn calls_up(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state == State::Confirmed)
            .count()
    }

    fn draw(&mut self) -> Draw {
        let w = self.cfg.weights;
        let parts = [
            (w.answer, Draw::Answer),
            (w.busy, Draw::Busy),
            (w.no_answer, Draw::NoAnswer),
            (w.reject, Draw::Reject),
            (w.unavailable, Draw::Unavailable),
        ];
        let total: f64 = parts.iter().map(|(p, _)| p.max(0.0)).sum();
        let mut x = self.rng.random::<f64>() * total;
        for (p, d) in parts {
            if x < p.max(0.0) {
                return d;
            }
            x -= p.max(0.0);
        }
        Draw::Answer
    }

    fn uniform(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        if hi <= lo {
            return lo;
        }
        lo + (hi - lo).mul_f64(self.rng.random::<f64>())
    }

    fn response(&self, call: &Call, code: u16, reason: &str) -> Vec<u8> {
        let mut r = Response::to(
            &call.invite,
            code,
            reason,
            (code > 100).then_some(call.to_tag.as_str()),
        );
        if code > 100 && code < 300 {
            r.headers
                .push("Contact", format!("<sip:callee@{}>", self.local));
        }
        if code == 200 {
            r.headers.push("Content-Type", "application/sdp");
            let offer = sdp::parse(&call.invite.body);
            let codec = offer
                .as_ref()
                .and_then(|m| m.codec())
                .unwrap_or(sdp::PT_PCMU);
            // Telephone-events too when offered under our number for them
            // (RFC 4733), as a carrier's media gateway answers.
            let mut answer = vec![codec];
            if offer.and_then(|m| m.telephone_event) == Some(sdp::PT_TELEPHONE_EVENT)
                && (!self.cfg.keys_as_tones || self.cfg.tones_despite_events)
            {
                answer.push(sdp::PT_TELEPHONE_EVENT);
            }
            r.body = sdp::audio(1, self.media, &answer).into_bytes();
        }
        r.encode()
    }

    fn schedule(&mut self, id: &str, now: Instant) {
        let Some(call) = self.calls.get_mut(id) else {
            return;
        };
        if call.state == State::Done && call.linger.is_some_and(|l| l <= now) {
            self.calls.remove(id);
            return;
        }
        if let Some(d) = call.deadline()
            && call.scheduled.is_none_or(|s| d < s || s <= now)
        {
            call.scheduled = Some(d);
            self.timers.push(Reverse((d, id.to_string())));
        }
    }

    fn finish(&mut self, id: &str, now: Instant) {
        let linger = now + 64 * self.cfg.timers.t1;
        if let Some(c) = self.calls.get_mut(id) {
            c.state = State::Done;
            c.ring_at = None;
            c.ring_until = None;
            c.retx = None;
            c.give_up = None;
            c.hangup_at = None;
            c.bye = None;
            c.linger = Some(linger);
        }
    }

    /// Feeds one datagram from `from`. Call on every arrival.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match message::parse(bytes, false) {
            Ok((Message::Request(r), _)) => self.on_request(now, from, r),
            Ok((Message::Response(r), _)) => self.on_response(now, r),
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!("sandbox: bad datagram from {from}: {e}");
            }
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, req: Request) {
        let id = req.headers.get("Call-ID").unwrap_or_default().to_string();
        match req.method {
            Method::Invite => {
                if let Some(c) = self.calls.get(&id) {
                    // A retransmission: repeat our last response.
                    if c.state != State::Confirmed {
                        let (peer, last) = (c.peer, c.last_response.clone());
                        self.tx.push_back((peer, last));
                    } else {
                        let mut ok = Response::to(&req, 200, "OK", Some(&c.to_tag));
                        ok.headers
                            .push("Contact", format!("<sip:callee@{}>", self.local));
                        self.tx.push_back((from, ok.encode()));
                    }
                    return;
                }
                self.stats.invites += 1;
                let draw = self.draw();
                let ring = match draw {
                    Draw::NoAnswer => self.cfg.max_ring,
                    _ => self.uniform(self.cfg.ring),
                };
                let to_tag = format!("{:012x}", self.rng.random::<u64>() >> 16);
                let mut call = Call {
                    peer: from,
                    invite: req,
                    to_tag,
                    draw,
                    state: State::Ringing,
                    last_response: Vec::new(),
                    ring_at: None,
                    rang_at: None,
                    ring_until: None,
                    retx: None,
                    give_up: None,
                    hangup_at: None,
                    bye: None,
                    bye_reply: None,
                    linger: None,
                    scheduled: None,
                };
                let trying = self.response(&call, 100, "Trying");
                self.tx.push_back((from, trying.clone()));
                call.last_response = trying;
                call.ring_at = Some((now + self.cfg.setup, ring));
                self.calls.insert(id.clone(), call);
                if self.cfg.setup.is_zero() {
                    self.ring(&id, now);
                }
            }
            Method::Ack => {
                let talk = self.cfg.talk_mean;
                let hold = if talk.is_zero() {
                    None
                } else {
                    // Exponential talk time with the configured mean.
                    let u: f64 = self.rng.random();
                    Some(talk.mul_f64(-(1.0 - u).ln()))
                };
                match self.calls.get_mut(&id).map(|c| c.state) {
                    Some(State::Answered) => {
                        if let Some(c) = self.calls.get_mut(&id) {
                            c.state = State::Confirmed;
                            c.retx = None;
                            c.give_up = None;
                            c.hangup_at = hold.map(|h| now + h);
                        }
                    }
                    Some(State::Completed) => self.finish(&id, now),
                    _ => {}
                }
            }
            Method::Cancel => {
                let reply = |tag: Option<&str>, code, reason| {
                    Response::to(&req, code, reason, tag).encode()
                };
                match self.calls.get(&id).map(|c| (c.state, c.to_tag.clone())) {
                    Some((State::Ringing, tag)) => {
                        self.tx.push_back((from, reply(Some(&tag), 200, "OK")));
                        self.stats.cancelled += 1;
                        let rang =
                            self.calls.get(&id).and_then(|c| c.rang_at).map_or(0, |at| {
                                now.saturating_duration_since(at).as_millis() as u64
                            });
                        let shortest = &mut self.stats.shortest_cancelled_ring_ms;
                        *shortest = Some(shortest.map_or(rang, |s| s.min(rang)));
                        self.final_response(&id, now, 487, "Request Terminated");
                    }
                    Some((_, tag)) => self.tx.push_back((from, reply(Some(&tag), 200, "OK"))),
                    None => self
                        .tx
                        .push_back((from, reply(None, 481, "Call/Transaction Does Not Exist"))),
                }
            }
            Method::Bye => {
                let state = self.calls.get(&id).map(|c| (c.state, c.bye_reply.clone()));
                match state {
                    Some((State::Answered | State::Confirmed | State::Closing, _)) => {
                        let ok = Response::to(&req, 200, "OK", None).encode();
                        self.tx.push_back((from, ok.clone()));
                        self.stats.caller_byes += 1;
                        self.finish(&id, now);
                        if let Some(c) = self.calls.get_mut(&id) {
                            c.bye_reply = Some(ok);
                        }
                    }
                    Some((State::Done, Some(ok))) => self.tx.push_back((from, ok)),
                    _ => self.tx.push_back((
                        from,
                        Response::to(&req, 481, "Call/Transaction Does Not Exist", None).encode(),
                    )),
                }
            }
            _ => {
                let code = if req.method == Method::Options {
                    200
                } else {
                    501
                };
                let reason = if code == 200 { "OK" } else { "Not Implemented" };
                self.tx
                    .push_back((from, Response::to(&req, code, reason, None).encode()));
            }
        }
        self.schedule(&id, now);
    }

    fn on_response(&mut self, now: Instant, r: Response) {
        let id = r.headers.get("Call-ID").unwrap_or_default().to_string();
        if r.code >= 200
            && let Ok((_, Method::Bye)) = message::cseq(&r.headers)
            && self
                .calls
                .get(&id)
                .is_some_and(|c| c.state == State::Closing)
        {
            self.finish(&id, now);
            self.schedule(&id, now);
        }
    }

    /// Sends the call's 180 at the end of its set-up: it rings from now.
    fn ring(&mut self, id: &str, now: Instant) {
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let Some((_, ring)) = call.ring_at else {
            return;
        };
        let ringing = self.response(call, 180, "Ringing");
        self.tx.push_back((call.peer, ringing.clone()));
        if let Some(c) = self.calls.get_mut(id) {
            c.last_response = ringing;
            c.ring_at = None;
            c.rang_at = Some(now);
            c.ring_until = Some(now + ring);
        }
    }

    fn final_response(&mut self, id: &str, now: Instant, code: u16, reason: &str) {
        let t = self.cfg.timers;
        let Some(call) = self.calls.get(id) else {
            return;
        };
        let bytes = self.response(call, code, reason);
        let peer = call.peer;
        self.tx.push_back((peer, bytes.clone()));
        if let Some(c) = self.calls.get_mut(id) {
            c.last_response = bytes;
            c.ring_at = None;
            c.ring_until = None;
            c.state = if code == 200 {
                State::Answered
            } else {
                State::Completed
            };
            c.retx = Some((now + t.t1, t.t1));
            c.give_up = Some(now + 64 * t.t1);
        }
    }

    fn send_bye(&mut self, id: &str, now: Instant) {
        let t = self.cfg.timers;
        let branch = format!("z9hG4bK{:016x}", self.rng.random::<u64>());
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        let uri = c
            .invite
            .headers
            .get("Contact")
            .map(|v| message::uri_of(v).to_string())
            .unwrap_or_else(|| c.invite.uri.clone());
        let mut bye = Request::new(Method::Bye, uri);
        let h = &mut bye.headers;
        h.push("Via", format!("SIP/2.0/UDP {};branch={branch}", self.local));
        h.push("Max-Forwards", "70");
        h.push(
            "From",
            format!(
                "{};tag={}",
                c.invite.headers.get("To").unwrap_or_default(),
                c.to_tag
            ),
        );
        h.push(
            "To",
            c.invite.headers.get("From").unwrap_or_default().to_string(),
        );
        h.push("Call-ID", id.to_string());
        h.push("CSeq", "1 BYE");
        let bytes = bye.encode();
        self.tx.push_back((c.peer, bytes.clone()));
        c.state = State::Closing;
        c.hangup_at = None;
        c.retx = None;
        c.give_up = None;
        c.bye = Some((bytes, now + t.t1, t.t1, now + 64 * t.t1));
        self.stats.our_byes += 1;
    }

    /// Runs the timers due at `now`. Call when [`Sandbox::poll_timeout`]
    /// has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = self.timers.pop() else {
                break;
            };
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if c.scheduled != Some(at) {
                continue;
            }
            c.scheduled = None;
            self.on_timeout(&id, now);
            self.schedule(&id, now);
        }
    }

    fn on_timeout(&mut self, id: &str, now: Instant) {
        let t = self.cfg.timers;
        let Some(c) = self.calls.get_mut(id) else {
            return;
        };
        if c.linger.is_some_and(|l| l <= now) {
            return;
        }
        if let Some((at, _)) = c.ring_at
            && at <= now
            && c.state == State::Ringing
        {
            self.ring(id, now);
            return;
        }
        if c.ring_until.is_some_and(|r| r <= now) && c.state == State::Ringing {
            let (code, reason) = match c.draw {
                Draw::Answer => (200, "OK"),
                Draw::Busy => (486, "Busy Here"),
                Draw::NoAnswer => (480, "Temporarily Unavailable"),
                Draw::Reject => (603, "Decline"),
                Draw::Unavailable => (503, "Service Unavailable"),
            };
            match code {
                200 => self.stats.answered += 1,
                486 => self.stats.busy += 1,
                603 => self.stats.rejected += 1,
                503 => self.stats.unavailable += 1,
                _ => {}
            }
            self.final_response(id, now, code, reason);
            return;
        }
        if c.give_up.is_some_and(|g| g <= now) {
            if c.state == State::Answered {
                // No ACK for our 200 within 64*T1: end it (RFC 3261 13.3.1.4).
                self.send_bye(id, now);
            } else {
                self.finish(id, now);
            }
            return;
        }
        if let Some((at, interval)) = c.retx
            && at <= now
        {
            self.tx.push_back((c.peer, c.last_response.clone()));
            let next = (interval * 2).min(t.t2);
            c.retx = Some((now + next, next));
        }
        if c.hangup_at.is_some_and(|h| h <= now) && c.state == State::Confirmed {
            self.send_bye(id, now);
            return;
        }
        if let Some((bytes, e, interval, f)) = &mut c.bye {
            if *f <= now {
                self.finish(id, now);
            } else if *e <= now {
                self.tx.push_back((c.peer, bytes.clone()));
                *interval = (*interval * 2).min(t.t2);
                *e = now + *interval;
            }
        }
    }

    /// The next moment [`Sandbox::handle_timeout`] should run. Call after
    /// every `handle_*`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// A datagram to send. Call after every `handle_*` until `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.tx.pop_front()
    }
}

/// Serves `cfg` on fresh loopback SIP and RTP ports until `stop` fires (or
/// its sender is gone): the SIP address and the serving task.
pub async fn spawn_loopback(
    cfg: SandboxConfig,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) -> std::io::Result<(
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<SandboxStats, SipError>>,
)> {
    let sip = UdpSocket::bind("127.0.0.1:0").await?;
    // RTP on an even port, RTCP on the one above: the reports callers send
    // are counted.
    let (rtp, rtcp) = crate::media::ports::ephemeral_pair([127, 0, 0, 1].into())?;
    let (rtp, rtcp) = (UdpSocket::from_std(rtp)?, UdpSocket::from_std(rtcp)?);
    let addr = sip.local_addr()?;
    let task = tokio::spawn(serve_with_rtcp(sip, rtp, Some(rtcp), cfg, async move {
        let _ = stop.recv().await;
    }));
    Ok((addr, task))
}

/// Serves SIP on `sip` and echoes RTP on `rtp` until `shutdown` completes;
/// returns what it did.
pub async fn serve(
    sip: UdpSocket,
    rtp: UdpSocket,
    cfg: SandboxConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<SandboxStats, SipError> {
    serve_with_rtcp(sip, rtp, None, cfg, shutdown).await
}

/// [`serve`], counting the RTCP packets callers send to `rtcp` (the port
/// above `rtp`'s, RFC 3550 11).
pub async fn serve_with_rtcp(
    sip: UdpSocket,
    rtp: UdpSocket,
    rtcp: Option<UdpSocket>,
    cfg: SandboxConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<SandboxStats, SipError> {
    let (press_key, keys_as_tones) = (cfg.press_key, cfg.keys_as_tones);
    let mut heard: HashMap<SocketAddr, u64> = HashMap::new();
    // Per source: how many of the press's packets are sounded so far.
    let mut sounding: HashMap<SocketAddr, usize> = HashMap::new();
    let mut keys = 0u64;
    let mut sb = Sandbox::new(cfg, sip.local_addr()?, rtp.local_addr()?);
    let mut buf = vec![0u8; message::MAX_MESSAGE];
    let mut rtp_buf = vec![0u8; 2048];
    let (mut echoed, mut voiced_packets, mut reports) = (0u64, 0u64, 0u64);
    let mut rtcp_buf = vec![0u8; 1500];
    tokio::pin!(shutdown);
    loop {
        let deadline = sb.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            () = &mut shutdown => break,
            r = sip.recv_from(&mut buf) => match r {
                Ok((n, from)) => sb.handle_datagram(tokio::time::Instant::now().into_std(), from, &buf[..n]),
                Err(e) => tracing::debug!("sandbox recv: {e}"),
            },
            r = rtp.recv_from(&mut rtp_buf) => {
                if let Ok((n, from)) = r {
                    echoed += 1;
                    if voiced(&rtp_buf[..n]) {
                        voiced_packets += 1;
                        let h = heard.entry(from).or_default();
                        *h += 1;
                        if let Some(digit) = press_key
                            && *h == PRESS_AFTER
                        {
                            keys += 1;
                            if keys_as_tones {
                                sounding.insert(from, 0);
                            } else {
                                let ssrc = 0x5A4D_0000 | u32::from(from.port());
                                for p in key_press(digit, ssrc, 1) {
                                    let _ = rtp.send_to(&p, from).await;
                                }
                            }
                        }
                    }
                    if let (Some(digit), Some(k)) = (press_key, sounding.get_mut(&from))
                        && *k < TONE_PACKETS
                    {
                        sound_key(&mut rtp_buf[..n], digit, *k);
                        *k += 1;
                    }
                    let _ = rtp.send_to(&rtp_buf[..n], from).await;
                }
            }
            r = async {
                match &rtcp {
                    Some(s) => s.recv_from(&mut rtcp_buf).await,
                    None => std::future::pending().await,
                }
            } => {
                // A compound packet starts with a version-2 SR or RR.
                if let Ok((n, _)) = r
                    && n >= 8
                    && rtcp_buf[0] >> 6 == 2
                    && matches!(rtcp_buf[1], 200 | 201)
                {
                    reports += 1;
                }
            }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => sb.handle_timeout(tokio::time::Instant::now().into_std()),
        }
        while let Some((to, bytes)) = sb.poll_transmit() {
            if let Err(e) = sip.send_to(&bytes, to).await {
                tracing::debug!("sandbox send to {to}: {e}");
            }
        }
    }
    let mut stats = sb.stats();
    stats.up_at_stop = sb.calls_up() as u64;
    stats.rtp_echoed = echoed;
    stats.rtp_voiced = voiced_packets;
    stats.rtcp_reports = reports;
    stats.keys_pressed = keys;
    Ok(stats)
}

#[cfg(test)]
mod tests;
