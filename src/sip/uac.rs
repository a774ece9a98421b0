//! The outbound call state machine (sans-IO): RFC 3261 INVITE client
//! transaction (timers A, B, D), the non-INVITE client transactions for
//! CANCEL and BYE (timers E, F), the dialog (Call-ID, tags, CSeq, route
//! set, remote target) and digest authentication retries, for many calls at
//! once.
//!
//! [`Endpoint`] never reads a clock or touches a socket: the caller feeds it
//! messages and the time (`handle_*`), and pulls bytes to send
//! ([`Endpoint::poll_transmit`]), call events ([`Endpoint::poll_event`]) and
//! the next deadline ([`Endpoint::poll_timeout`]). `sip::ua` is the tokio
//! driver; tests drive it with virtual time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::auth::{Challenge, Credentials};
use super::message::{self, Headers, Message, Method, Request, Response};
use super::{SipError, Transport, masked_uri, sdp};

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Round-trip estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests (4 s).
    pub t2: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }
}

/// How long a call may ring before it is cancelled. Never under 15 s: the
/// US, UK and India rules (and our policy elsewhere) require at least that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingTimeout(Duration);

impl RingTimeout {
    /// The shortest ring timeout any campaign may use.
    pub const MIN: Duration = Duration::from_secs(15);

    /// A ring timeout of `d`, refused when under [`RingTimeout::MIN`].
    pub fn new(d: Duration) -> Result<RingTimeout, SipError> {
        if d < Self::MIN {
            return Err(SipError::RingTimeoutTooShort(d));
        }
        Ok(RingTimeout(d))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Default for RingTimeout {
    fn default() -> RingTimeout {
        RingTimeout(Duration::from_secs(25))
    }
}

/// What one outbound call is for.
#[derive(Debug, Clone)]
pub struct CallParams {
    /// Request-URI, e.g. `sip:+919876543210@provider.example:5060`.
    pub target: String,
    /// Our user part in From and Contact (the caller ID).
    pub from_user: String,
    /// When to give up ringing and CANCEL.
    pub ring_timeout: RingTimeout,
    /// Provider credentials for 401/407 challenges.
    pub credentials: Option<Credentials>,
    /// Where our RTP listens, for the SDP offer.
    pub media_addr: SocketAddr,
    /// Hang up (BYE) after this long connected; `None`: wait for the callee
    /// or [`Endpoint::hangup`].
    pub max_talk: Option<Duration>,
}

/// Endpoint-wide settings.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our address as the peer sees it (Via sent-by, Contact).
    pub local: SocketAddr,
    /// UDP or TCP: decides Via and whether to retransmit.
    pub transport: Transport,
    /// Timer values.
    pub timers: Timers,
    /// Seed for Call-IDs, tags and branches (unique per endpoint run).
    pub seed: u64,
}

/// How a call ended, as the dialler counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx: someone (or a machine) answered.
    Answered,
    /// 486 Busy Here, 600 Busy Everywhere.
    Busy,
    /// 603 Decline, 403 Forbidden.
    Rejected,
    /// 480 Temporarily Unavailable, 503 Service Unavailable.
    Unavailable,
    /// 404 Not Found, 484 Address Incomplete, 410 Gone, 604.
    NotFound,
    /// Rang until the ring timeout; cancelled (487, or 200 crossing CANCEL).
    NoAnswer,
    /// We cancelled before the ring timeout (hang-up before answer).
    Cancelled,
    /// Any other final response (3xx are not followed; failed auth).
    Failure,
    /// No response at all within timer B (64*T1).
    Timeout,
    /// The transport refused: port closed, connection refused or lost.
    Unreachable,
}

impl Outcome {
    /// The outcome a final non-2xx status code stands for.
    pub fn from_code(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::Answered,
            486 | 600 => Outcome::Busy,
            603 | 403 => Outcome::Rejected,
            480 | 503 => Outcome::Unavailable,
            404 | 484 | 410 | 604 => Outcome::NotFound,
            487 => Outcome::Cancelled,
            _ => Outcome::Failure,
        }
    }

    /// Every outcome, in report order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Answered,
        Outcome::Busy,
        Outcome::Rejected,
        Outcome::Unavailable,
        Outcome::NotFound,
        Outcome::NoAnswer,
        Outcome::Cancelled,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::Unreachable,
    ];

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
            Outcome::NotFound => "not_found",
            Outcome::NoAnswer => "no_answer",
            Outcome::Cancelled => "cancelled",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
        }
    }
}

/// Who ended a connected call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// We sent BYE.
    Local,
    /// The callee sent BYE.
    Remote,
}

/// Everything known about a call once it has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// How it ended.
    pub outcome: Outcome,
    /// Status codes received for the INVITE(s), in order, repeats removed.
    pub codes: Vec<u16>,
    /// The final INVITE status, if one came.
    pub final_code: Option<u16>,
    /// INVITE sent to the first response of any kind (the provider's own
    /// setup latency).
    #[serde(with = "opt_ms")]
    pub first_response_after: Option<Duration>,
    /// INVITE sent to first 18x.
    #[serde(with = "opt_ms")]
    pub progress_after: Option<Duration>,
    /// INVITE sent to 200 OK (setup latency).
    #[serde(with = "opt_ms")]
    pub answer_after: Option<Duration>,
    /// 200 OK to the end of the call.
    #[serde(with = "opt_ms")]
    pub talk: Option<Duration>,
    /// Who hung up a connected call.
    pub hangup: Option<Side>,
    /// A 200 crossed our CANCEL: it was acknowledged and hung up at once.
    pub crossed_cancel: bool,
    /// A Retry-After the provider sent with its final response.
    #[serde(with = "opt_ms")]
    pub retry_after: Option<Duration>,
}

mod opt_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }
}

/// Something the caller of [`Endpoint`] should know about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A provisional response (180, 183, ...); `early_media` when it
    /// carried SDP.
    Progress {
        /// Status code.
        code: u16,
        /// The response carried an SDP answer (early media).
        early_media: bool,
    },
    /// 200 OK received and ACK sent.
    Answered {
        /// The callee's media, if its SDP was usable.
        media: Option<sdp::Media>,
        /// Arrival of the 200 to ACK handed to the transport. Zero from the
        /// sans-IO core (it ACKs within the same call); the tokio driver
        /// fills in the wall time it measured.
        ack_latency: Duration,
        /// The 200 OK's headers (for a provider's answering-machine
        /// verdict, for example).
        headers: Headers,
    },
    /// The call is over.
    Ended(Summary),
}

/// Handle of a call inside an [`Endpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Counters of what the endpoint refused or ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// Messages that did not parse.
    pub malformed: u64,
    /// Responses for no call we know (late or stray).
    pub stray: u64,
    /// Retransmitted responses absorbed (and re-ACKed where due).
    pub retransmissions: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Cancelling,
    Confirmed,
    Closing,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    RingTimeout,
    Local,
}

/// A non-INVITE client transaction's retransmission state (timers E, F).
#[derive(Debug)]
struct NonInvite {
    bytes: Vec<u8>,
    cseq: u32,
    next_e: Option<(Instant, Duration)>,
    timer_f: Instant,
    done: bool,
}

impl NonInvite {
    fn new(now: Instant, bytes: Vec<u8>, cseq: u32, timers: Timers, reliable: bool) -> NonInvite {
        NonInvite {
            bytes,
            cseq,
            next_e: (!reliable).then(|| (now + timers.t1, timers.t1)),
            timer_f: now + 64 * timers.t1,
            done: false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        Some(match self.next_e {
            Some((e, _)) => e.min(self.timer_f),
            None => self.timer_f,
        })
    }
}

struct Call {
    id: CallId,
    params: CallParams,
    call_id: String,
    from: String,
    to: String,
    cseq: u32,
    invite: Request,
    invite_bytes: Vec<u8>,
    sent_at: Instant,
    state: State,
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    ring_deadline: Instant,
    cancel_pending: Option<CancelReason>,
    cancel_reason: Option<CancelReason>,
    cancel: Option<NonInvite>,
    cancel_deadline: Option<Instant>,
    remote_tag: Option<String>,
    remote_target: String,
    route: Vec<String>,
    ack_2xx: Option<Vec<u8>>,
    ack_final: Option<Vec<u8>>,
    bye: Option<NonInvite>,
    bye_reply: Option<Vec<u8>>,
    talk_deadline: Option<Instant>,
    answered_at: Option<Instant>,
    auth_tries: u32,
    nonce_count: u32,
    summary: Summary,
    linger_until: Option<Instant>,
    scheduled: Option<Instant>,
}

struct Out<'a> {
    cfg: &'a EndpointConfig,
    rng: &'a mut StdRng,
    tx: &'a mut VecDeque<Vec<u8>>,
    events: &'a mut VecDeque<(CallId, CallEvent)>,
    stats: &'a mut EndpointStats,
}

impl Out<'_> {
    fn token(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token())
    }

    fn via(&mut self) -> String {
        format!(
            "SIP/2.0/{} {};branch={};rport",
            self.cfg.transport.via_name(),
            self.cfg.local,
            self.branch()
        )
    }
}

impl Call {
    fn new(id: CallId, now: Instant, params: CallParams, out: &mut Out<'_>) -> Call {
        let call_id = format!("{}@dialler", out.token());
        let local_tag = out.token();
        let local = out.cfg.local;
        let from = format!("<sip:{}@{}>;tag={local_tag}", params.from_user, local.ip());
        let to = format!("<{}>", params.target);
        let mut invite = Request::new(Method::Invite, params.target.clone());
        let h = &mut invite.headers;
        h.push("Via", out.via());
        h.push("Max-Forwards", "70");
        h.push("From", from.clone());
        h.push("To", to.clone());
        h.push("Call-ID", call_id.clone());
        h.push("CSeq", "1 INVITE");
        h.push(
            "Contact",
            out.cfg.transport.contact(&params.from_user, local),
        );
        h.push("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS");
        h.push("User-Agent", "dialler");
        h.push("Content-Type", "application/sdp");
        let session = out.rng.random::<u32>() as u64;
        invite.body = sdp::audio(
            session,
            params.media_addr,
            &[sdp::PT_PCMU, sdp::PT_PCMA, sdp::PT_TELEPHONE_EVENT],
        )
        .into_bytes();
        let invite_bytes = invite.encode();
        let remote_target = params.target.clone();
        let ring_deadline = now + params.ring_timeout.get();
        let mut call = Call {
            id,
            params,
            call_id,
            from,
            to,
            cseq: 1,
            invite,
            invite_bytes,
            sent_at: now,
            state: State::Calling,
            timer_a: None,
            timer_b: None,
            ring_deadline,
            cancel_pending: None,
            cancel_reason: None,
            cancel: None,
            cancel_deadline: None,
            remote_tag: None,
            remote_target,
            route: Vec::new(),
            ack_2xx: None,
            ack_final: None,
            bye: None,
            bye_reply: None,
            talk_deadline: None,
            answered_at: None,
            auth_tries: 0,
            nonce_count: 0,
            summary: Summary {
                outcome: Outcome::Failure,
                codes: Vec::new(),
                final_code: None,
                first_response_after: None,
                progress_after: None,
                answer_after: None,
                talk: None,
                hangup: None,
                crossed_cancel: false,
                retry_after: None,
            },
            linger_until: None,
            scheduled: None,
        };
        call.send_invite(now, out);
        tracing::debug!(call_id = %call.call_id, target = %masked_uri(&call.params.target), "INVITE sent");
        call
    }

    fn send_invite(&mut self, now: Instant, out: &mut Out<'_>) {
        let t = out.cfg.timers;
        out.tx.push_back(self.invite_bytes.clone());
        self.timer_a = (!out.cfg.transport.reliable()).then(|| (now + t.t1, t.t1));
        self.timer_b = Some(now + 64 * t.t1);
        self.state = State::Calling;
    }

    fn deadline(&self) -> Option<Instant> {
        if self.state == State::Done {
            return self.linger_until;
        }
        let mut d: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        consider(self.timer_a.map(|(t, _)| t));
        consider(self.timer_b);
        if matches!(self.state, State::Calling | State::Proceeding) && self.cancel_pending.is_none()
        {
            consider(Some(self.ring_deadline));
        }
        consider(self.cancel.as_ref().and_then(NonInvite::deadline));
        consider(self.cancel_deadline);
        consider(self.bye.as_ref().and_then(NonInvite::deadline));
        if self.state == State::Confirmed {
            consider(self.talk_deadline);
        }
        d
    }

    fn end(&mut self, now: Instant, outcome: Outcome, out: &mut Out<'_>) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.summary.outcome = outcome;
        if let Some(a) = self.answered_at {
            self.summary.talk = Some(now.saturating_duration_since(a));
        }
        self.timer_a = None;
        self.timer_b = None;
        self.cancel_deadline = None;
        self.talk_deadline = None;
        // Keep answering retransmissions (final responses, 200s, BYEs) for
        // 64*T1, as timer D and the UAS's 2xx retransmissions require.
        self.linger_until = Some(now + 64 * out.cfg.timers.t1);
        tracing::debug!(call_id = %self.call_id, outcome = outcome.name(), "call ended");
        out.events
            .push_back((self.id, CallEvent::Ended(self.summary.clone())));
    }

    fn base_request(&self, method: Method, uri: &str, via: String, to: &str, cseq: u32) -> Request {
        let mut r = Request::new(method.clone(), uri.to_string());
        let h = &mut r.headers;
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        for route in &self.route {
            h.push("Route", route.clone());
        }
        h.push("From", self.from.clone());
        h.push("To", to.to_string());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{cseq} {method}"));
        r
    }

    fn invite_via(&self) -> String {
        self.invite
            .headers
            .get("Via")
            .unwrap_or_default()
            .to_string()
    }

    fn dialog_to(&self) -> String {
        match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.to),
            None => self.to.clone(),
        }
    }

    fn send_cancel(&mut self, now: Instant, reason: CancelReason, out: &mut Out<'_>) {
        let mut c = Request::new(Method::Cancel, self.invite.uri.clone());
        let h = &mut c.headers;
        h.push("Via", self.invite_via());
        h.push("Max-Forwards", "70");
        h.push("From", self.from.clone());
        h.push("To", self.to.clone());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{} CANCEL", self.cseq));
        let bytes = c.encode();
        out.tx.push_back(bytes.clone());
        let t = out.cfg.timers;
        self.cancel = Some(NonInvite::new(
            now,
            bytes,
            self.cseq,
            t,
            out.cfg.transport.reliable(),
        ));
        // RFC 3261 9.1: if no final response comes within 64*T1 of the
        // CANCEL, the INVITE transaction is considered gone.
        self.cancel_deadline = Some(now + 64 * t.t1);
        self.cancel_reason = Some(reason);
        self.state = State::Cancelling;
        tracing::debug!(call_id = %self.call_id, "CANCEL sent");
    }

    fn send_bye(&mut self, now: Instant, out: &mut Out<'_>) {
        self.cseq += 1;
        let via = out.via();
        let bye = self.base_request(
            Method::Bye,
            &self.remote_target.clone(),
            via,
            &self.dialog_to(),
            self.cseq,
        );
        let bytes = bye.encode();
        out.tx.push_back(bytes.clone());
        self.bye = Some(NonInvite::new(
            now,
            bytes,
            self.cseq,
            out.cfg.timers,
            out.cfg.transport.reliable(),
        ));
        self.state = State::Closing;
    }

    fn record_code(&mut self, code: u16) {
        if self.summary.codes.last() != Some(&code) {
            self.summary.codes.push(code);
        }
    }

    fn on_response(&mut self, now: Instant, r: &Response, out: &mut Out<'_>) {
        let Ok((n, method)) = message::cseq(&r.headers) else {
            return;
        };
        match method {
            Method::Invite if n == self.cseq || (r.code >= 200 && r.code < 300) => {
                self.on_invite_response(now, n, r, out)
            }
            Method::Invite => {
                // A retransmitted final response to an INVITE we replaced
                // (auth retry): ACK it again, nothing else.
                out.stats.retransmissions += 1;
                if let Some(a) = &self.ack_final {
                    out.tx.push_back(a.clone());
                }
            }
            Method::Cancel => {
                if let Some(c) = &mut self.cancel
                    && r.code >= 200
                    && n == c.cseq
                {
                    c.done = true;
                }
            }
            Method::Bye => {
                if r.code < 200 {
                    return;
                }
                if let Some(b) = &mut self.bye
                    && n == b.cseq
                    && !b.done
                {
                    b.done = true;
                    if self.state == State::Closing {
                        let outcome = self.closing_outcome();
                        self.end(now, outcome, out);
                    }
                }
            }
            _ => out.stats.stray += 1,
        }
    }

    /// The outcome of a call we are hanging up: answered, or a 200 that
    /// crossed our CANCEL (then the cancel's reason decides).
    fn closing_outcome(&self) -> Outcome {
        if self.summary.crossed_cancel {
            match self.cancel_reason {
                Some(CancelReason::RingTimeout) => Outcome::NoAnswer,
                _ => Outcome::Cancelled,
            }
        } else {
            Outcome::Answered
        }
    }

    fn on_invite_response(&mut self, now: Instant, n: u32, r: &Response, out: &mut Out<'_>) {
        let code = r.code;
        let elapsed = now.saturating_duration_since(self.sent_at);
        if self.summary.first_response_after.is_none() {
            self.summary.first_response_after = Some(elapsed);
        }
        if code < 200 {
            if !matches!(
                self.state,
                State::Calling | State::Proceeding | State::Cancelling
            ) {
                out.stats.retransmissions += 1;
                return;
            }
            self.record_code(code);
            self.timer_a = None;
            self.timer_b = None;
            if self.state == State::Calling {
                self.state = State::Proceeding;
            }
            if code > 100 {
                if self.summary.progress_after.is_none() {
                    self.summary.progress_after = Some(elapsed);
                }
                out.events.push_back((
                    self.id,
                    CallEvent::Progress {
                        code,
                        early_media: sdp::parse(&r.body).is_some(),
                    },
                ));
            }
            if self.state == State::Proceeding
                && let Some(reason) = self.cancel_pending.take()
            {
                self.send_cancel(now, reason, out);
            }
            return;
        }
        if code < 300 {
            let tag = r
                .headers
                .get("To")
                .and_then(message::tag_of)
                .map(str::to_string);
            if let Some(ack) = &self.ack_2xx {
                // A retransmitted 200 (our ACK was lost), or a second 200.
                out.stats.retransmissions += 1;
                if tag == self.remote_tag {
                    out.tx.push_back(ack.clone());
                }
                return;
            }
            if self.state == State::Done {
                out.stats.stray += 1;
                return;
            }
            self.record_code(code);
            self.summary.final_code = Some(code);
            self.remote_tag = tag;
            if let Some(c) = r.headers.get("Contact") {
                self.remote_target = message::uri_of(c).to_string();
            }
            let mut rr: Vec<String> = r
                .headers
                .get_all("Record-Route")
                .map(str::to_string)
                .collect();
            rr.reverse();
            self.route = rr;
            let via = out.via();
            let ack = self
                .base_request(
                    Method::Ack,
                    &self.remote_target.clone(),
                    via,
                    &self.dialog_to(),
                    n,
                )
                .encode();
            out.tx.push_back(ack.clone());
            self.ack_2xx = Some(ack);
            self.timer_a = None;
            self.timer_b = None;
            self.cancel_deadline = None;
            self.summary.answer_after = Some(elapsed);
            if self.state == State::Cancelling || self.cancel_pending.is_some() {
                // The 200 crossed our CANCEL: ACK then BYE (RFC 3261 9.1, 15).
                if self.cancel_reason.is_none() {
                    self.cancel_reason = self.cancel_pending.take();
                }
                self.summary.crossed_cancel = true;
                self.send_bye(now, out);
                self.summary.hangup = Some(Side::Local);
                return;
            }
            self.state = State::Confirmed;
            self.answered_at = Some(now);
            self.talk_deadline = self.params.max_talk.map(|t| now + t);
            out.events.push_back((
                self.id,
                CallEvent::Answered {
                    media: sdp::parse(&r.body),
                    ack_latency: Duration::ZERO,
                    headers: r.headers.clone(),
                },
            ));
            return;
        }
        // 3xx-6xx: ACK in the INVITE transaction (same branch), then decide.
        let mut ack = Request::new(Method::Ack, self.invite.uri.clone());
        let h = &mut ack.headers;
        h.push("Via", self.invite_via());
        h.push("Max-Forwards", "70");
        h.push("From", self.from.clone());
        h.push("To", r.headers.get("To").unwrap_or(&self.to).to_string());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{n} ACK"));
        let ack = ack.encode();
        out.tx.push_back(ack.clone());
        let repeat = self.ack_final.is_some() && self.summary.final_code == Some(code);
        self.ack_final = Some(ack);
        if repeat || self.state == State::Done {
            out.stats.retransmissions += 1;
            return;
        }
        self.record_code(code);
        self.timer_a = None;
        self.timer_b = None;
        if (code == 401 || code == 407)
            && self.auth_tries == 0
            && self.cancel_reason.is_none()
            && let Some(creds) = self.params.credentials.clone()
        {
            let header = if code == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            match r
                .headers
                .get(header)
                .map(|v| Challenge::parse(v, code == 407))
            {
                Some(Ok(ch)) => {
                    self.auth_tries += 1;
                    self.nonce_count += 1;
                    let cnonce = out.token();
                    let value = ch.authorization(
                        &creds,
                        "INVITE",
                        &self.invite.uri,
                        &cnonce,
                        self.nonce_count,
                    );
                    self.cseq += 1;
                    let via = out.via();
                    let h = &mut self.invite.headers;
                    h.set("Via", via);
                    h.set("CSeq", format!("{} INVITE", self.cseq));
                    h.set(ch.answer_header(), value);
                    self.invite_bytes = self.invite.encode();
                    self.send_invite(now, out);
                    tracing::debug!(call_id = %self.call_id, code, "answering digest challenge");
                    return;
                }
                Some(Err(e)) => {
                    tracing::warn!(call_id = %self.call_id, "cannot answer challenge: {e}")
                }
                None => tracing::warn!(call_id = %self.call_id, code, "challenge without {header}"),
            }
        }
        self.summary.final_code = Some(code);
        self.summary.retry_after = r
            .headers
            .get("Retry-After")
            .and_then(|v| v.split([';', ' ', '(']).next()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let outcome = match (code, self.cancel_reason) {
            (487, Some(CancelReason::RingTimeout)) => Outcome::NoAnswer,
            (487, _) => Outcome::Cancelled,
            (401 | 407, _) => Outcome::Failure,
            _ => Outcome::from_code(code),
        };
        self.end(now, outcome, out);
    }

    fn on_request(&mut self, now: Instant, req: &Request, out: &mut Out<'_>) {
        match req.method {
            Method::Ack => {}
            Method::Bye => {
                if let Some(reply) = &self.bye_reply {
                    out.stats.retransmissions += 1;
                    out.tx.push_back(reply.clone());
                    return;
                }
                if !matches!(self.state, State::Confirmed | State::Closing) {
                    out.tx.push_back(
                        Response::to(req, 481, "Call/Transaction Does Not Exist", None).encode(),
                    );
                    return;
                }
                let reply = Response::to(req, 200, "OK", None).encode();
                out.tx.push_back(reply.clone());
                self.bye_reply = Some(reply);
                if self.state == State::Confirmed {
                    self.summary.hangup = Some(Side::Remote);
                    self.end(now, Outcome::Answered, out);
                } else {
                    // Both sides hung up at once: the call is over either way.
                    let outcome = self.closing_outcome();
                    self.end(now, outcome, out);
                }
            }
            Method::Invite if self.state == State::Confirmed => {
                // A re-INVITE (session refresh): keep the session as it is.
                let mut ok = Response::to(req, 200, "OK", None);
                ok.headers.push(
                    "Contact",
                    out.cfg
                        .transport
                        .contact(&self.params.from_user, out.cfg.local),
                );
                ok.headers.push("Content-Type", "application/sdp");
                ok.body = self.invite.body.clone();
                out.tx.push_back(ok.encode());
            }
            Method::Options => out
                .tx
                .push_back(Response::to(req, 200, "OK", None).encode()),
            _ => out
                .tx
                .push_back(Response::to(req, 501, "Not Implemented", None).encode()),
        }
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Out<'_>) {
        if self.state == State::Done {
            return;
        }
        if let Some((at, interval)) = self.timer_a
            && at <= now
        {
            out.tx.push_back(self.invite_bytes.clone());
            let next = interval * 2;
            self.timer_a = Some((now + next, next));
        }
        if self.timer_b.is_some_and(|b| b <= now) {
            self.end(now, Outcome::Timeout, out);
            return;
        }
        if matches!(self.state, State::Calling | State::Proceeding)
            && self.cancel_pending.is_none()
            && self.ring_deadline <= now
        {
            if self.state == State::Proceeding {
                self.send_cancel(now, CancelReason::RingTimeout, out);
            } else {
                // RFC 3261 9.1: no CANCEL before a provisional response.
                self.cancel_pending = Some(CancelReason::RingTimeout);
            }
        }
        let t2 = out.cfg.timers.t2;
        for tx in [self.cancel.as_mut(), self.bye.as_mut()]
            .into_iter()
            .flatten()
        {
            if tx.done {
                continue;
            }
            if tx.timer_f <= now {
                tx.done = true;
                continue;
            }
            if let Some((at, interval)) = tx.next_e
                && at <= now
            {
                out.tx.push_back(tx.bytes.clone());
                let next = (interval * 2).min(t2);
                tx.next_e = Some((now + next, next));
            }
        }
        if self.state == State::Closing && self.bye.as_ref().is_some_and(|b| b.done) {
            let outcome = self.closing_outcome();
            self.end(now, outcome, out);
            return;
        }
        if self.state == State::Cancelling && self.cancel_deadline.is_some_and(|d| d <= now) {
            let outcome = match self.cancel_reason {
                Some(CancelReason::RingTimeout) => Outcome::NoAnswer,
                _ => Outcome::Cancelled,
            };
            self.end(now, outcome, out);
            return;
        }
        if self.state == State::Confirmed && self.talk_deadline.is_some_and(|t| t <= now) {
            self.summary.hangup = Some(Side::Local);
            self.send_bye(now, out);
        }
    }

    fn hangup(&mut self, now: Instant, out: &mut Out<'_>) {
        match self.state {
            State::Calling => {
                self.cancel_pending.get_or_insert(CancelReason::Local);
            }
            State::Proceeding => self.send_cancel(now, CancelReason::Local, out),
            State::Confirmed => {
                self.summary.hangup = Some(Side::Local);
                self.send_bye(now, out);
            }
            State::Cancelling | State::Closing | State::Done => {}
        }
    }
}

/// Many outbound calls over one transport to one provider.
pub struct Endpoint {
    cfg: EndpointConfig,
    rng: StdRng,
    next_id: u64,
    calls: HashMap<u64, Call>,
    by_call_id: HashMap<String, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<(CallId, CallEvent)>,
    stats: EndpointStats,
    live: usize,
}

impl Endpoint {
    /// An endpoint with no calls.
    pub fn new(cfg: EndpointConfig) -> Endpoint {
        Endpoint {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            next_id: 0,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            timers: BinaryHeap::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            live: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Calls not yet ended.
    pub fn live_calls(&self) -> usize {
        self.live
    }

    /// Counters of refused and ignored messages.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    fn with_call(
        &mut self,
        id: u64,
        now: Instant,
        f: impl FnOnce(&mut Call, Instant, &mut Out<'_>),
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let was_done = call.state == State::Done;
        let mut out = Out {
            cfg: &self.cfg,
            rng: &mut self.rng,
            tx: &mut self.tx,
            events: &mut self.events,
            stats: &mut self.stats,
        };
        f(call, now, &mut out);
        if !was_done && call.state == State::Done {
            self.live -= 1;
        }
        if call.state == State::Done && call.linger_until.is_some_and(|l| l <= now) {
            self.by_call_id.remove(&call.call_id);
            self.calls.remove(&id);
            return;
        }
        if let Some(d) = call.deadline()
            && call.scheduled.is_none_or(|s| d < s || s <= now)
        {
            call.scheduled = Some(d);
            self.timers.push(Reverse((d, id)));
        }
    }

    /// Starts a call: the INVITE is queued for [`Endpoint::poll_transmit`].
    /// Call when the pacer allows a new call.
    pub fn start_call(&mut self, now: Instant, params: CallParams) -> CallId {
        self.next_id += 1;
        let id = self.next_id;
        let mut out = Out {
            cfg: &self.cfg,
            rng: &mut self.rng,
            tx: &mut self.tx,
            events: &mut self.events,
            stats: &mut self.stats,
        };
        let call = Call::new(CallId(id), now, params, &mut out);
        self.by_call_id.insert(call.call_id.clone(), id);
        self.calls.insert(id, call);
        self.live += 1;
        self.with_call(id, now, |_, _, _| {});
        CallId(id)
    }

    /// Hangs up: CANCEL before an answer, BYE after. Call when the campaign
    /// drops the call; a no-op once the call is over.
    pub fn hangup(&mut self, now: Instant, id: CallId) {
        self.with_call(id.0, now, Call::hangup);
    }

    /// Feeds bytes received from the provider (one datagram, or one framed
    /// message over TCP). Call on every arrival; a malformed message is
    /// counted, answered with nothing, and returned as the error.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> Result<(), SipError> {
        match message::parse(bytes, false) {
            Ok((m, _)) => {
                self.handle_message(now, m);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Feeds a parsed message. Call on every arrival.
    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        let call_id = msg.headers().get("Call-ID").unwrap_or_default();
        let id = self.by_call_id.get(call_id).copied();
        match (msg, id) {
            (Message::Response(r), Some(id)) => {
                self.with_call(id, now, |c, now, out| c.on_response(now, &r, out))
            }
            (Message::Response(r), None) => {
                self.stats.stray += 1;
                tracing::debug!(code = r.code, "stray response dropped");
            }
            (Message::Request(q), Some(id)) => {
                self.with_call(id, now, |c, now, out| c.on_request(now, &q, out))
            }
            (Message::Request(q), None) => {
                let reply = match q.method {
                    Method::Ack => return,
                    Method::Options => Response::to(&q, 200, "OK", None),
                    Method::Invite => {
                        Response::to(&q, 480, "Temporarily Unavailable", Some("dialler"))
                    }
                    _ => Response::to(&q, 481, "Call/Transaction Does Not Exist", None),
                };
                self.tx.push_back(reply.encode());
            }
        }
    }

    /// The transport says the peer refuses (ICMP port unreachable,
    /// connection refused or lost). Calls that heard nothing yet end as
    /// [`Outcome::Unreachable`]; the others run on their timers.
    pub fn handle_unreachable(&mut self, now: Instant) {
        let waiting: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state == State::Calling && c.summary.codes.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.with_call(id, now, |c, now, out| c.end(now, Outcome::Unreachable, out));
        }
    }

    /// Runs the timers due at `now`. Call when [`Endpoint::poll_timeout`]
    /// has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let current = self.calls.get(&id).and_then(|c| c.scheduled);
            if current != Some(at) {
                continue;
            }
            if let Some(c) = self.calls.get_mut(&id) {
                c.scheduled = None;
            }
            self.with_call(id, now, Call::on_timeout);
        }
    }

    /// The next moment [`Endpoint::handle_timeout`] should run. Call after
    /// every `handle_*`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Bytes to send to the provider, oldest first. Call after every
    /// `handle_*` and `start_call` until it returns `None`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// The next call event. Call after every `handle_*` until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<(CallId, CallEvent)> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
