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
use serde::{Deserialize, Serialize};

use super::auth::{self, Credentials, NonceCounts};
use super::message::{self, Headers, Message, Method, Request, Response};
use super::{SipError, Transport, masked_uri, sdp};
use ended::Ended;

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
    /// When to give up ringing and CANCEL: counted from the first 180 or
    /// 183 of the INVITE to the destination in use (the phone rings from
    /// then: a slow set-up must not shorten the ringing the rules ask
    /// for), or from the INVITE while none came. A timeout that falls
    /// before any response at all sends its CANCEL at the first
    /// provisional response (RFC 3261 9.1), whatever it is.
    pub ring_timeout: RingTimeout,
    /// Provider credentials for 401/407 challenges.
    pub credentials: Option<Credentials>,
    /// Where our RTP listens, for the SDP offer.
    pub media_addr: SocketAddr,
    /// Hang up (BYE) after this long connected; `None`: wait for the callee
    /// or [`Endpoint::hangup`].
    pub max_talk: Option<Duration>,
    /// Display name in From (the campaign's caller name), if any.
    pub display_name: Option<String>,
    /// Headers added to the INVITE as given, e.g. the campaign's
    /// P-Asserted-Identity (RFC 3325).
    pub extra_headers: Vec<(String, String)>,
    /// Where to send, in the order to try (RFC 3263 resolution of the
    /// provider); the next is tried when one refuses, stays silent for
    /// [`FAILOVER_SILENCE`] or answers 503. Empty: the driver's default
    /// peer only.
    pub destinations: Vec<SocketAddr>,
    /// The leg's Call-ID, From tag and first branch, chosen by the caller
    /// so that it can store them (with [`leg_record`]) before the INVITE
    /// goes out; `None`: the endpoint draws them.
    pub ids: Option<LegIds>,
}

/// The identifiers of a leg chosen before its INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegIds {
    /// Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// The first INVITE's Via branch.
    pub branch: String,
}

impl LegIds {
    /// Fresh identifiers (64 random bits each, from the thread's
    /// generator).
    pub fn random() -> LegIds {
        let mut r = rand::rng();
        let mut token = || format!("{:016x}", r.random::<u64>());
        LegIds {
            call_id: format!("{}@dialler", token()),
            local_tag: token(),
            branch: format!("z9hG4bK{}", token()),
        }
    }
}

/// What a node needs to end a leg it placed before a crash: the first
/// INVITE's transaction (to CANCEL it while it rings) and, once answered,
/// the dialog (to BYE it). Stored before the INVITE goes out and again
/// at the answer; [`Endpoint::resume_call`] takes it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    /// Call-ID.
    pub call_id: String,
    /// The INVITE's Request-URI.
    pub request_uri: String,
    /// The INVITE's Via (its branch and sent-by identify the transaction).
    pub via: String,
    /// From, with our tag.
    pub from: String,
    /// To, without the peer's tag.
    pub to: String,
    /// The INVITE's CSeq number.
    pub invite_cseq: u32,
    /// Where the INVITE went (`None`: the driver's default peer).
    pub dest: Option<SocketAddr>,
    /// The dialog, once answered.
    pub dialog: Option<DialogState>,
}

/// An answered leg's dialog as our side holds it (RFC 3261 12.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogState {
    /// The peer's To tag.
    pub remote_tag: String,
    /// The peer's Contact.
    pub remote_target: String,
    /// The route set, in the order requests carry it.
    pub route: Vec<String>,
    /// Our CSeq number when it was taken.
    pub cseq: u32,
}

/// How far past the stored CSeq a resumed leg's BYE goes: in-dialog
/// requests sent after the record was written (session refreshes, a few
/// an hour) must stay below it (RFC 3261 12.2.1.1).
const RESUME_CSEQ_GAP: u32 = 1_000;

/// The record of a leg [`Endpoint`] would place with `params` and `ids`
/// (the same Via, From and To its INVITE carries).
pub fn leg_record(cfg: &EndpointConfig, params: &CallParams, ids: &LegIds) -> LegRecord {
    let local = cfg.local;
    let from = match &params.display_name {
        Some(name) => format!(
            "\"{}\" <sip:{}@{}>;tag={}",
            name.replace(['"', '\\'], ""),
            params.from_user,
            local.ip(),
            ids.local_tag
        ),
        None => format!(
            "<sip:{}@{}>;tag={}",
            params.from_user,
            local.ip(),
            ids.local_tag
        ),
    };
    LegRecord {
        call_id: ids.call_id.clone(),
        request_uri: params.target.clone(),
        via: via_with(cfg, &ids.branch),
        from,
        to: format!("<{}>", params.target),
        invite_cseq: 1,
        dest: params.destinations.first().copied(),
        dialog: None,
    }
}

/// Our Via with `branch`. Over a connection, `alias` asks the peer to
/// send its requests back on it (RFC 5923), so nothing has to reach us
/// from outside.
fn via_with(cfg: &EndpointConfig, branch: &str) -> String {
    let alias = if cfg.transport.reliable() {
        ";alias"
    } else {
        ""
    };
    format!(
        "SIP/2.0/{} {};branch={branch};rport{alias}",
        cfg.transport.via_name(),
        cfg.local,
    )
}

/// How long a destination may stay silent (not even 100 Trying) before
/// the INVITE moves to the next one. RFC 3261 17.2.1 has a UAS send 100
/// within 200 ms; eight round trips (8*T1 with the default T1) is a
/// generous allowance that still fails over well inside a ring timeout.
pub const FAILOVER_SILENCE: Duration = Duration::from_secs(4);

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
    /// Any other final response (a 3xx not followed: another number, or
    /// past the redirect bound; failed auth).
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
    /// Other answers (forked 2xx with another tag, or answers after the
    /// call gave up) that were ACKed and hung up at once.
    pub extra_answers: u32,
    /// We hung up and the far end never confirmed it: our BYE timed out,
    /// its destination refused it, or it was answered with an error other
    /// than 481 (no such call there). The call is over for us (RFC 3261
    /// 15.1.1), but the trunk may still hold it, and bill it.
    pub hangup_unconfirmed: bool,
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
        /// The ring time counts from this response: the first 180 or 183
        /// of the call, or of the destination or target a failover or
        /// redirect moved it to (the callee's phone rings from here).
        rings: bool,
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
        /// The dialog it set up, for a caller that stores it to end the
        /// leg after a crash (see [`LegRecord`]).
        dialog: DialogState,
    },
    /// The peer changed the session (re-INVITE or UPDATE with SDP): hold,
    /// resume, or a new media address. Already answered per RFC 3264.
    MediaChanged {
        /// The peer's new media description.
        media: sdp::Media,
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

/// What a client transaction other than the INVITE and its CANCEL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    /// Our BYE of the call's dialog.
    Bye,
    /// The BYE of an unwanted dialog a forked 2xx created.
    ForkBye,
    /// A PRACK for a reliable provisional response (RFC 3262).
    Prack,
    /// A session refresh (RFC 4028): UPDATE, or re-INVITE when the peer
    /// does not allow UPDATE.
    Refresh,
}

/// A client transaction other than the call's INVITE: retransmission
/// (timers E, F; INVITE timers A, B for a refresh re-INVITE), the request
/// kept for a digest retry, and the branch and CSeq its responses must
/// carry.
#[derive(Debug)]
struct ClientTx {
    kind: TxKind,
    request: Request,
    bytes: Vec<u8>,
    branch: String,
    cseq: u32,
    next_e: Option<(Instant, Duration)>,
    timer_f: Instant,
    done: bool,
    auth_tries: u32,
    /// For a refresh re-INVITE: the ACK of its 2xx, resent on each
    /// retransmitted 2xx.
    ack: Option<Vec<u8>>,
    /// Where it goes (its retransmissions and a digest retry too).
    dest: Option<SocketAddr>,
}

impl ClientTx {
    fn new(
        now: Instant,
        kind: TxKind,
        request: Request,
        timers: Timers,
        reliable: bool,
    ) -> ClientTx {
        let bytes = request.encode();
        let branch = message::top_branch(&request.headers)
            .unwrap_or_default()
            .to_string();
        let cseq = message::cseq(&request.headers).map_or(0, |(n, _)| n);
        ClientTx {
            kind,
            request,
            bytes,
            branch,
            cseq,
            next_e: (!reliable).then(|| (now + timers.t1, timers.t1)),
            timer_f: now + 64 * timers.t1,
            done: false,
            auth_tries: 0,
            ack: None,
            dest: None,
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

    /// A finished transaction keeps its branch, method and CSeq (to match
    /// a retransmitted final response) and the ACK it resends; the
    /// request and its bytes go.
    fn shed(&mut self) {
        if !self.bytes.is_empty() {
            self.request = Request::new(self.request.method.clone(), String::new());
            self.bytes = Vec::new();
        }
    }

    fn matches(&self, branch: &str, method: &Method, cseq: u32) -> bool {
        self.branch == branch && &self.request.method == method && self.cseq == cseq
    }
}

/// How many final responses to re-INVITEs a call keeps for their ACKs.
const MAX_KEPT_FINALS: usize = 4;

/// A final response we sent to a re-INVITE, retransmitted on timer G
/// over UDP until its ACK comes (a 2xx: RFC 3261 13.3.1.4, the call ended
/// without one by timer H; a refusal: 17.2.1, given up at timer H).
#[derive(Debug)]
struct ServerOk {
    to: ReplyTo,
    cseq: u32,
    bytes: Vec<u8>,
    next_g: Option<(Instant, Duration)>,
    timer_h: Instant,
    /// The re-INVITE had no offer, so the 2xx carried ours and the ACK
    /// brings the answer (RFC 3261 14.2, RFC 3264 5).
    offered: bool,
    /// A 2xx (else a refusal, 300-699).
    success: bool,
}

/// A dialog a forked 2xx created that the call does not keep: it is ACKed
/// and hung up at once (RFC 3261 13.2.2.4), so nobody who answered that
/// branch is left on a dead line.
#[derive(Debug)]
struct Fork {
    tag: Option<String>,
    ack: Vec<u8>,
    /// Where its dialog's requests go.
    dest: Option<SocketAddr>,
}

/// The session timer of a confirmed call (RFC 4028).
#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    interval: Duration,
    /// We refresh (`refresher=uac`); else the peer must, and we hang up
    /// when it does not.
    we_refresh: bool,
    /// When to refresh, or when the session has expired unrefreshed.
    at: Instant,
}

impl SessionTimer {
    fn from_headers(headers: &Headers, we_are_uac: bool, now: Instant) -> Option<SessionTimer> {
        let v = headers.get("Session-Expires")?;
        let secs = session_expires_secs(v)?;
        let interval = Duration::from_secs(secs);
        let refresher = message::param(&format!(">{v}"), "refresher").map(str::to_ascii_lowercase);
        // Without a refresher parameter the UAC refreshes (RFC 4028 7.2).
        let we_refresh = match refresher.as_deref() {
            Some("uas") => !we_are_uac,
            _ => we_are_uac,
        };
        let mut t = SessionTimer {
            interval,
            we_refresh,
            at: now,
        };
        t.restart(now);
        Some(t)
    }

    /// A refresh happened at `now`: the next one is due at half the
    /// interval; the peer's refresh may come as late as the interval less
    /// a third (at most 32 s) before we call the session dead.
    fn restart(&mut self, now: Instant) {
        self.at = if self.we_refresh {
            now + self.interval / 2
        } else {
            now + self.interval - (self.interval / 3).min(Duration::from_secs(32))
        };
    }
}

/// An INVITE a call replaced with a new transaction.
#[derive(Debug, Clone)]
struct Replaced {
    cseq: u32,
    /// Its Via (its branch).
    via: String,
    uri: String,
    dest: Option<SocketAddr>,
}

/// The smallest session interval we accept or ask for (RFC 4028 4: 90 s).
const MIN_SE: u64 = 90;

/// The longest session interval taken: a day. A larger one (a peer may
/// send any number of digits) is taken as a day, so that no timer falls
/// beyond what the clock can hold.
const MAX_SE: u64 = 86_400;

/// A Session-Expires value's interval in seconds as sent (RFC 4028 4:
/// delta-seconds, then parameters); past u64, as long as can be; `None`
/// for 0 or anything that is not digits.
fn session_expires_asked(value: &str) -> Option<u64> {
    let digits = value.split(';').next()?.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = digits.parse::<u64>().unwrap_or(u64::MAX);
    (secs > 0).then_some(secs)
}

/// [`session_expires_asked`] between [`MIN_SE`] and [`MAX_SE`].
fn session_expires_secs(value: &str) -> Option<u64> {
    session_expires_asked(value).map(|secs| secs.clamp(MIN_SE, MAX_SE))
}

/// How many 3xx redirects one call follows.
const MAX_REDIRECTS: u32 = 3;

struct Call {
    id: CallId,
    params: CallParams,
    call_id: String,
    local_tag: String,
    from: String,
    to: String,
    /// The last CSeq number we used in this call (any method).
    cseq: u32,
    /// The CSeq number of the current INVITE.
    invite_cseq: u32,
    /// Every branch an INVITE of this call was sent with (digest retries,
    /// 421/422 retries and redirects make new ones).
    invite_branches: Vec<String>,
    /// The INVITEs this call replaced (a failover, a digest or extension
    /// retry, a redirect): what an ACK to a late non-2xx final response
    /// of theirs needs (RFC 3261 17.1.1.3: same branch, Request-URI and
    /// destination as the INVITE it acknowledges).
    replaced: Vec<Replaced>,
    invite: Request,
    invite_bytes: Vec<u8>,
    sent_at: Instant,
    state: State,
    timer_a: Option<(Instant, Duration)>,
    timer_b: Option<Instant>,
    ring_deadline: Instant,
    /// A 180 or 183 to the current INVITE came: `ring_deadline` counts
    /// from the first.
    ringing: bool,
    cancel_pending: Option<CancelReason>,
    cancel_reason: Option<CancelReason>,
    cancel: Option<ClientTx>,
    cancel_deadline: Option<Instant>,
    /// The call was answered on an INVITE we had already replaced (a
    /// destination we failed over from answered late) before the current
    /// INVITE heard anything: CANCEL the current one at its first
    /// provisional response (RFC 3261 9.1), so the person is not rung on
    /// a second line.
    cancel_superseded: bool,
    remote_tag: Option<String>,
    remote_target: String,
    route: Vec<String>,
    /// The highest CSeq of the peer's requests in the dialog.
    remote_cseq: Option<u32>,
    /// Our reply to the peer's last request, resent when it retransmits.
    last_reply: Option<(u32, Method, Vec<u8>)>,
    ack_2xx: Option<Vec<u8>>,
    ack_final: Option<Vec<u8>>,
    /// The CSeq number of the INVITE `ack_final` acknowledges.
    ack_final_cseq: u32,
    bye: Option<ClientTx>,
    others: Vec<ClientTx>,
    forks: Vec<Fork>,
    /// Final responses to re-INVITEs awaiting their ACKs (at most one 2xx
    /// and [`MAX_KEPT_FINALS`] in all).
    kept_finals: Vec<ServerOk>,
    /// The last RSeq PRACKed, per early dialog (the provisional's To tag).
    last_rseq: Vec<(Option<String>, u32)>,
    /// The SDP answer a provisional response carried, per early dialog
    /// (its To tag): the session's answer when the 200 repeats none (RFC
    /// 3262 5, RFC 3264 with a reliable 183).
    early_sdp: Vec<(Option<String>, Vec<u8>)>,
    session_timer: Option<SessionTimer>,
    /// The peer's Allow header (from its 2xx): decides UPDATE or re-INVITE
    /// for our session refreshes.
    peer_allows_update: bool,
    sdp_session: u64,
    sdp_version: u64,
    /// Codec and direction of the last SDP we sent.
    sdp_sent: (Vec<u8>, sdp::Direction),
    /// The audio codec the session runs on: the answer's to our INVITE,
    /// then whatever a re-INVITE's exchange chose. A new offer that still
    /// lists it keeps it, so media already flowing is never re-coded.
    codec: Option<u8>,
    talk_deadline: Option<Instant>,
    answered_at: Option<Instant>,
    auth_tries: u32,
    extension_retries: u32,
    redirects: u32,
    nonce_counts: NonceCounts,
    summary: Summary,
    linger_until: Option<Instant>,
    scheduled: Option<Instant>,
    /// Index into `params.destinations` of the one in use.
    dest_idx: usize,
    /// Anything heard from the destination in use.
    heard: bool,
    /// When to give up on a silent destination and try the next.
    failover_at: Option<Instant>,
    /// The dialog's next hop once answered (RFC 3261 12.2.1.1: the first
    /// route, else the remote target), when its URI names an address;
    /// `None`: the INVITE's destination.
    dialog_hop: Option<SocketAddr>,
    /// Taken back after a crash to end it ([`Endpoint::resume_call`]): a
    /// 2xx to any of its INVITEs (one retried with a branch never stored)
    /// is ACKed and BYEd.
    resumed: bool,
}

/// Bytes to send and where: `to` is `None` for the driver's default peer
/// (its provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The destination, or `None` for the driver's default peer.
    pub to: Option<SocketAddr>,
    /// One SIP message.
    pub bytes: Vec<u8>,
}

/// Where the responses to the request being handled go: `to`, as its Via
/// says (see [`Endpoint::handle_message_from`]), and `also` to the port it
/// came from when that differs, so that a peer behind NAT that did not ask
/// for `rport` still hears them (symmetric response, RFC 3581's reason to
/// be); a stray copy elsewhere is dropped like any unmatched response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReplyTo {
    to: Option<SocketAddr>,
    also: Option<SocketAddr>,
}

impl ReplyTo {
    /// Queues `bytes` for each destination.
    fn push(self, tx: &mut VecDeque<Transmit>, bytes: Vec<u8>) {
        if let Some(also) = self.also {
            tx.push_back(Transmit {
                to: Some(also),
                bytes: bytes.clone(),
            });
        }
        tx.push_back(Transmit { to: self.to, bytes });
    }
}

struct Out<'a> {
    cfg: &'a EndpointConfig,
    rng: &'a mut StdRng,
    tx: &'a mut VecDeque<Transmit>,
    /// Where responses to the request being handled go.
    source: ReplyTo,
    events: &'a mut VecDeque<(CallId, CallEvent)>,
    stats: &'a mut EndpointStats,
}

impl Out<'_> {
    fn send(&mut self, to: Option<SocketAddr>, bytes: Vec<u8>) {
        self.tx.push_back(Transmit { to, bytes });
    }

    /// Sends a response to the request being handled, back to its sender.
    fn reply(&mut self, bytes: Vec<u8>) {
        let to = self.source;
        self.send_reply(to, bytes);
    }

    /// Sends a response where `r` says.
    fn send_reply(&mut self, r: ReplyTo, bytes: Vec<u8>) {
        r.push(self.tx, bytes);
    }

    fn token(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token())
    }

    fn via(&mut self) -> String {
        let branch = self.branch();
        via_with(self.cfg, &branch)
    }

    fn contact(&self, user: &str) -> String {
        self.cfg.transport.contact(user, self.cfg.local)
    }
}

/// The methods we accept in a dialog, for Allow.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE";

/// The user part of a SIP URI reduced to its digits (`sip:+1-555@x;p`
/// gives `1555`), to tell whether a redirect still reaches the number
/// that was screened. `None` unless the user part is a telephone number:
/// digits, a leading `+` and the visual separators `-.()` only (RFC
/// 3966). An escape (`%31`), a letter, `*` or `#` may be read otherwise
/// by the next hop, so such a target is never taken for the screened
/// number.
fn user_digits(uri: &str) -> Option<String> {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let user = rest.split_once('@')?.0;
    let user = user.split(';').next().unwrap_or_default();
    let number = user.strip_prefix('+').unwrap_or(user);
    if !number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '(' | ')'))
    {
        return None;
    }
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then_some(digits)
}

/// RFC 3261 8.2.2.3: the 420 a request requiring an extension we do not
/// support gets (with the extensions in Unsupported); `None` when every
/// one it requires is one we do (`timer`, RFC 4028).
fn bad_extension(req: &Request) -> Option<Response> {
    let unsupported: Vec<&str> = message::list_entries(&req.headers, "Require")
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("timer"))
        .collect();
    if unsupported.is_empty() {
        return None;
    }
    let mut r = Response::to(req, 420, "Bad Extension", None);
    r.headers.push("Unsupported", unsupported.join(", "));
    Some(r)
}

/// The answer to an OPTIONS (RFC 3261 11.2): 200 with what we allow, or
/// the 420 of an extension it requires that we lack.
fn options_reply(req: &Request) -> Response {
    bad_extension(req).unwrap_or_else(|| {
        let mut ok = Response::to(req, 200, "OK", None);
        ok.headers.push("Allow", ALLOW);
        ok
    })
}

/// Whether a Request-URI's scheme is one we serve (`sip`, `sips`); any
/// other gets 416 (RFC 3261 8.2.2.1).
fn known_scheme(uri: &str) -> bool {
    uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
    })
}

/// True when a Route entry's URI carries `lr` (a loose router).
fn is_loose(route: &str) -> bool {
    message::uri_of(route)
        .split(';')
        .skip(1)
        .any(|p| p.eq_ignore_ascii_case("lr") || p.to_ascii_lowercase().starts_with("lr="))
}

/// The route set a response establishes: its Record-Route entries in
/// reverse order (RFC 3261 12.1.2), every entry of every header line.
fn route_set(r: &Response) -> Vec<String> {
    let mut rr: Vec<String> = message::list_entries(&r.headers, "Record-Route")
        .into_iter()
        .map(str::to_string)
        .collect();
    rr.reverse();
    rr
}

/// A dialog's next hop (RFC 3261 12.2.1.1, 8.1.2): the first route of the
/// route set, else the remote target, when its URI names an IP address
/// (the port, or 5060; 5061 for `sips:` or `transport=tls`). A host name
/// gives `None`: the
/// sans-IO core resolves nothing, and the call's own destination (the
/// provider RFC 3263 located) is used.
fn next_hop(route: &[String], target: &str) -> Option<SocketAddr> {
    let uri = route.first().map_or(target, |r| message::uri_of(r));
    let u = super::resolve::SipUri::parse(uri).ok()?;
    let ip: std::net::IpAddr = u.host.parse().ok()?;
    let tls = u.secure || u.transport == Some(Transport::Tls);
    Some(SocketAddr::new(
        ip,
        u.port.unwrap_or(if tls { 5061 } else { 5060 }),
    ))
}

/// True when a header holding option tags (Require, Supported) lists `tag`.
fn has_option(headers: &Headers, name: &str, tag: &str) -> bool {
    headers
        .get_all(name)
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// Whether a request's Accept lets its response carry SDP (RFC 3261
/// 20.1): no Accept header means `application/sdp`; one that names no
/// media range covering it (`application/sdp`, `application/*`, `*/*`),
/// or covers it only with `q=0`, or is empty (no formats at all), does
/// not.
fn accepts_sdp(headers: &Headers) -> bool {
    if headers.get("Accept").is_none() {
        return true;
    }
    let ranges: Vec<(String, bool)> = headers
        .get_all("Accept")
        .flat_map(|v| v.split(','))
        .map(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
                })
            });
            (media, refused)
        })
        .collect();
    // The most specific range that covers SDP decides (RFC 9110 12.5.1):
    // `application/sdp;q=0` refuses it whatever a wildcard says.
    ["application/sdp", "application/*", "*/*"]
        .iter()
        .find_map(|m| ranges.iter().find(|(r, _)| r == m))
        .is_some_and(|(_, refused)| !refused)
}

/// The parameters of a call taken back only to end it (after a crash, or
/// from its lingering record): its INVITE's target and destination, no
/// media and no ringing of its own.
fn ending_params(
    rec: &LegRecord,
    from_user: String,
    credentials: Option<Credentials>,
) -> CallParams {
    CallParams {
        target: rec.request_uri.clone(),
        from_user,
        ring_timeout: RingTimeout::default(),
        credentials,
        media_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        max_talk: None,
        display_name: None,
        extra_headers: Vec::new(),
        destinations: rec.dest.into_iter().collect(),
        ids: None,
    }
}

/// Whether a request from the peer belongs to our dialog (RFC 3261
/// 12.2.2: its Call-ID, matched already, and both tags: To ours, From the
/// answer's, `remote_tag` once the answer was ACKed), or to a fork we
/// hung up: `(in_dialog, fork)`. Anything else gets 481.
fn dialog_of(
    req: &Request,
    local_tag: &str,
    remote_tag: Option<&str>,
    forks: &[Fork],
) -> (bool, bool) {
    let to_tag = req.headers.get("To").and_then(message::tag_of);
    let from_tag = req.headers.get("From").and_then(message::tag_of);
    let ours = to_tag == Some(local_tag);
    let in_dialog = ours && from_tag.is_some() && from_tag == remote_tag;
    let fork = ours
        && forks
            .iter()
            .any(|f| f.tag.is_some() && f.tag.as_deref() == from_tag);
    (in_dialog, fork)
}

/// A request of the peer's that is not new: a retransmission of its last
/// gets our reply to it again, an older one 500 (RFC 3261 12.2.2). True
/// when it was such a request (answered, or needing no answer).
fn answered_as_old(
    remote_cseq: Option<u32>,
    last_reply: Option<&(u32, Method, Vec<u8>)>,
    req: &Request,
    n: u32,
    out: &mut Out<'_>,
) -> bool {
    let Some(last) = remote_cseq else {
        return false;
    };
    if n == last {
        match last_reply {
            Some((c, m, bytes)) if *c == n && *m == req.method => {
                out.stats.retransmissions += 1;
                out.reply(bytes.clone());
            }
            // A CANCEL of the peer's re-INVITE, already answered: it has
            // no effect, and is itself answered 200 (RFC 3261 9.2).
            Some((c, Method::Invite, _)) if *c == n && req.method == Method::Cancel => {
                out.reply(Response::to(req, 200, "OK", None).encode());
            }
            // The CSeq of the last request with another method: not a
            // retransmission but a new request that did not count up
            // (RFC 3261 12.2.1.1): refused like one out of order, so the
            // peer hears of it rather than retrying a BYE in silence.
            _ if req.method != Method::Cancel => {
                out.reply(Response::to(req, 500, "CSeq Out of Order", None).encode());
            }
            _ => {}
        }
        return true;
    }
    if n < last {
        out.reply(Response::to(req, 500, "CSeq Out of Order", None).encode());
        return true;
    }
    false
}

/// Whether `headers` hold more than one Via value, in separate headers or
/// in one list (without allocating for the usual single value: every
/// response is checked).
fn more_than_one_via(headers: &message::Headers) -> bool {
    let mut vias = headers.get_all("Via");
    match (vias.next(), vias.next()) {
        (Some(_), Some(_)) => true,
        (Some(v), None) => v.contains(',') && message::split_list(v).len() > 1,
        _ => false,
    }
}

/// A Request-URI from a URI a peer gave (a redirect's Contact): without
/// its headers (`?...`) or `method` parameter, which a Request-URI may
/// not carry (RFC 3261 19.1.1, Table 1).
fn request_uri_of(uri: &str) -> String {
    let uri = uri.split('?').next().unwrap_or(uri);
    let mut parts = uri.split(';');
    let mut out = parts.next().unwrap_or_default().to_string();
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("method") {
            out.push(';');
            out.push_str(p);
        }
    }
    out
}

/// The header that answers a 401 (`Authorization`) or a 407
/// (`Proxy-Authorization`).
fn challenge_answer_header(code: u16) -> &'static str {
    if code == 407 {
        "Proxy-Authorization"
    } else {
        "Authorization"
    }
}

/// Whether the 401/407 `r` to `request` (answered `tries` times so far in
/// its transaction) gets an answer: each kind of challenge once, at most
/// two (a proxy's and the far end's), and once more when the request's
/// credentials were only stale (RFC 7616 3.3). A challenge of a kind the
/// request already answered, not stale, means the credentials are refused.
fn may_answer(r: &Response, request: &Request, tries: u32) -> bool {
    let answered = request
        .headers
        .get(challenge_answer_header(r.code))
        .is_some();
    if !answered {
        return tries < 2;
    }
    tries < 3
        && auth::only_stale(
            r.headers.get_all(auth::challenge_header(r.code)),
            r.code == 407,
        )
}

/// The encoded ACK of a 2xx, carrying its INVITE's credentials (RFC 3261
/// 13.2.2.4).
fn with_credentials_of(mut ack: Request, invite: &Request) -> Vec<u8> {
    for name in ["Proxy-Authorization", "Authorization"] {
        for v in invite.headers.get_all(name) {
            ack.headers.push(name, v.to_string());
        }
    }
    ack.encode()
}

/// A request inside a dialog (RFC 3261 12.2.1.1): Request-URI and Route
/// from the route set, loose or strict.
#[allow(clippy::too_many_arguments)]
fn dialog_request(
    method: Method,
    target: &str,
    route: &[String],
    from: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    via: String,
) -> Request {
    let (uri, routes): (String, Vec<String>) = match route.first() {
        Some(first) if !is_loose(first) => {
            // Strict router: it goes in the Request-URI and the remote
            // target becomes the last Route.
            let mut rest = route[1..].to_vec();
            rest.push(format!("<{target}>"));
            (message::uri_of(first).to_string(), rest)
        }
        _ => (target.to_string(), route.to_vec()),
    };
    let mut r = Request::new(method.clone(), uri);
    let h = &mut r.headers;
    h.push("Via", via);
    h.push("Max-Forwards", "70");
    for route in routes {
        h.push("Route", route);
    }
    h.push("From", from.to_string());
    h.push("To", to.to_string());
    h.push("Call-ID", call_id.to_string());
    h.push("CSeq", format!("{cseq} {method}"));
    r
}

impl Call {
    fn new(id: CallId, now: Instant, mut params: CallParams, out: &mut Out<'_>) -> Call {
        let ids = params.ids.take().unwrap_or_else(|| LegIds {
            call_id: format!("{}@dialler", out.token()),
            local_tag: out.token(),
            branch: out.branch(),
        });
        let rec = leg_record(out.cfg, &params, &ids);
        let mut call = Call::build(id, now, params, ids.local_tag, &rec, out);
        call.send_invite(now, out);
        tracing::debug!(call_id = %call.call_id, target = %masked_uri(&call.params.target), "INVITE sent");
        call
    }

    /// A leg a crash left (see [`LegRecord`]), taken back to end it: BYE
    /// when it was answered, else CANCEL of its first INVITE (and ACK then
    /// BYE if a 2xx comes).
    fn resume(
        id: CallId,
        now: Instant,
        rec: LegRecord,
        credentials: Option<Credentials>,
        out: &mut Out<'_>,
    ) -> Call {
        let params = ending_params(&rec, String::new(), credentials);
        let local_tag = message::tag_of(&rec.from).unwrap_or_default().to_string();
        let mut call = Call::build(id, now, params, local_tag, &rec, out);
        call.resumed = true;
        match rec.dialog {
            Some(d) => {
                call.remote_tag = Some(d.remote_tag);
                call.remote_target = d.remote_target;
                call.route = d.route;
                call.dialog_hop = next_hop(&call.route, &call.remote_target);
                call.cseq = d.cseq.saturating_add(RESUME_CSEQ_GAP);
                call.state = State::Confirmed;
                call.answered_at = Some(now);
                call.summary.hangup = Some(Side::Local);
                call.send_bye(now, out);
                tracing::info!(call_id = %call.call_id, "BYE for a leg a crash left up");
            }
            None => {
                call.state = State::Proceeding;
                call.send_cancel(now, CancelReason::Local, out);
                tracing::info!(call_id = %call.call_id, "CANCEL for a leg a crash left ringing");
            }
        }
        call
    }

    /// The call as its first INVITE (from `rec`) sets it up, nothing sent.
    fn build(
        id: CallId,
        now: Instant,
        params: CallParams,
        local_tag: String,
        rec: &LegRecord,
        out: &mut Out<'_>,
    ) -> Call {
        let call_id = rec.call_id.clone();
        let from = rec.from.clone();
        let to = rec.to.clone();
        let mut invite = Request::new(Method::Invite, rec.request_uri.clone());
        let h = &mut invite.headers;
        h.push("Via", rec.via.clone());
        h.push("Max-Forwards", "70");
        h.push("From", from.clone());
        h.push("To", to.clone());
        h.push("Call-ID", call_id.clone());
        h.push("CSeq", format!("{} INVITE", rec.invite_cseq));
        h.push("Contact", out.contact(&params.from_user));
        h.push("Allow", ALLOW);
        h.push("Supported", "100rel, timer");
        for (name, value) in &params.extra_headers {
            h.push(name.clone(), value.clone());
        }
        h.push("User-Agent", "dialler");
        h.push("Content-Type", "application/sdp");
        let session = out.rng.random::<u32>() as u64;
        let offered = vec![sdp::PT_PCMU, sdp::PT_PCMA, sdp::PT_TELEPHONE_EVENT];
        invite.body = sdp::audio(session, params.media_addr, &offered).into_bytes();
        let invite_bytes = invite.encode();
        let remote_target = params.target.clone();
        let ring_deadline = now + params.ring_timeout.get();
        let branch = message::top_branch(&invite.headers)
            .unwrap_or_default()
            .to_string();
        Call {
            id,
            params,
            call_id,
            local_tag,
            from,
            to,
            cseq: rec.invite_cseq,
            invite_cseq: rec.invite_cseq,
            invite_branches: vec![branch],
            replaced: Vec::new(),
            invite,
            invite_bytes,
            sent_at: now,
            state: State::Calling,
            timer_a: None,
            timer_b: None,
            ring_deadline,
            ringing: false,
            cancel_pending: None,
            cancel_reason: None,
            cancel: None,
            cancel_deadline: None,
            cancel_superseded: false,
            remote_tag: None,
            remote_target,
            route: Vec::new(),
            remote_cseq: None,
            last_reply: None,
            ack_2xx: None,
            ack_final: None,
            ack_final_cseq: 0,
            bye: None,
            others: Vec::new(),
            forks: Vec::new(),
            kept_finals: Vec::new(),
            last_rseq: Vec::new(),
            early_sdp: Vec::new(),
            session_timer: None,
            peer_allows_update: false,
            sdp_session: session,
            sdp_version: session,
            sdp_sent: (offered, sdp::Direction::SendRecv),
            codec: None,
            talk_deadline: None,
            answered_at: None,
            auth_tries: 0,
            extension_retries: 0,
            redirects: 0,
            nonce_counts: NonceCounts::default(),
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
                extra_answers: 0,
                hangup_unconfirmed: false,
            },
            linger_until: None,
            scheduled: None,
            dest_idx: 0,
            heard: false,
            failover_at: None,
            dialog_hop: None,
            resumed: false,
        }
    }

    fn send_invite(&mut self, now: Instant, out: &mut Out<'_>) {
        let dest = self.invite_dest();
        let t = out.cfg.timers;
        out.send(dest, self.invite_bytes.clone());
        self.timer_a = (!out.cfg.transport.reliable()).then(|| (now + t.t1, t.t1));
        self.timer_b = Some(now + 64 * t.t1);
        self.state = State::Calling;
        self.failover_at =
            (self.dest_idx + 1 < self.params.destinations.len()).then(|| now + FAILOVER_SILENCE);
    }

    /// Where the INVITE transaction goes (the INVITE, its CANCEL, the ACK
    /// of a non-2xx): the destination in use (`None`: the driver's
    /// default peer).
    fn invite_dest(&self) -> Option<SocketAddr> {
        self.params.destinations.get(self.dest_idx).copied()
    }

    /// Where a request of the call goes: once the dialog is set up, its
    /// next hop (see `dialog_hop`); before, the INVITE's destination.
    fn dest(&self) -> Option<SocketAddr> {
        match (&self.remote_tag, self.dialog_hop) {
            (Some(_), Some(hop)) => Some(hop),
            _ => self.invite_dest(),
        }
    }

    /// Moves the INVITE to the next destination (RFC 3263 4.3), as a new
    /// transaction. False when there is none or it is too late to.
    fn fail_over(&mut self, now: Instant, out: &mut Out<'_>) -> bool {
        if self.dest_idx + 1 >= self.params.destinations.len()
            || self.cancel_reason.is_some()
            || self.cancel_pending.is_some()
            || !matches!(self.state, State::Calling | State::Proceeding)
            || self.ack_2xx.is_some()
        {
            return false;
        }
        let from = self.invite_dest();
        self.remember_replaced();
        self.dest_idx += 1;
        self.heard = false;
        tracing::info!(call_id = %self.call_id, from = ?from, to = ?self.invite_dest(), "trying the next destination");
        // Nobody was reached: the ring timeout starts again.
        self.ring_deadline = now + self.params.ring_timeout.get();
        self.ringing = false;
        self.resend_invite(now, out, |_| {});
        true
    }

    /// Keeps the current INVITE, about to be replaced, to acknowledge a
    /// late final response to it (a handful per call at most). Before a
    /// failover moves the destination on.
    fn remember_replaced(&mut self) {
        if self.replaced.len() < 8
            && self
                .replaced
                .last()
                .is_none_or(|r| r.cseq != self.invite_cseq)
        {
            self.replaced.push(Replaced {
                cseq: self.invite_cseq,
                via: self.invite_via(),
                uri: self.invite.uri.clone(),
                dest: self.invite_dest(),
            });
        }
    }

    /// Sends the INVITE again as a new transaction (new branch, next
    /// CSeq), after `change` has adjusted it: a digest answer, an
    /// extension the peer requires, or a redirect's Request-URI.
    fn resend_invite(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        change: impl FnOnce(&mut Request),
    ) {
        self.remember_replaced();
        self.cseq += 1;
        self.invite_cseq = self.cseq;
        let via = out.via();
        if let Some(b) = message::param(&format!(">{via}"), "branch") {
            self.invite_branches.push(b.to_string());
        }
        let h = &mut self.invite.headers;
        h.set("Via", via);
        h.set("CSeq", format!("{} INVITE", self.cseq));
        change(&mut self.invite);
        self.invite_bytes = self.invite.encode();
        self.send_invite(now, out);
    }

    fn deadline(&self) -> Option<Instant> {
        if self.state == State::Done {
            // A fork's BYE may still be running: its retransmissions too.
            return self
                .others
                .iter()
                .chain(self.bye.as_ref())
                .filter_map(ClientTx::deadline)
                .chain(self.linger_until)
                .min();
        }
        let mut d: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        consider(self.timer_a.map(|(t, _)| t));
        consider(self.timer_b);
        if self.state == State::Calling && !self.heard {
            consider(self.failover_at);
        }
        if matches!(self.state, State::Calling | State::Proceeding) && self.cancel_pending.is_none()
        {
            consider(Some(self.ring_deadline));
        }
        consider(self.cancel.as_ref().and_then(ClientTx::deadline));
        consider(self.cancel_deadline);
        consider(self.bye.as_ref().and_then(ClientTx::deadline));
        for tx in &self.others {
            consider(tx.deadline());
        }
        for ok in &self.kept_finals {
            consider(ok.next_g.map(|(t, _)| t));
            consider(Some(ok.timer_h));
        }
        if self.state == State::Confirmed {
            consider(self.talk_deadline);
            consider(self.session_timer.map(|t| t.at));
        }
        d
    }

    fn end(&mut self, now: Instant, outcome: Outcome, out: &mut Out<'_>) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.summary.outcome = outcome;
        if self.summary.hangup_unconfirmed {
            tracing::warn!(call_id = %self.call_id, "the far end did not confirm our BYE: the trunk may still hold the call");
        }
        if let Some(a) = self.answered_at {
            self.summary.talk = Some(now.saturating_duration_since(a));
        }
        self.timer_a = None;
        self.timer_b = None;
        self.cancel_deadline = None;
        self.talk_deadline = None;
        self.session_timer = None;
        self.kept_finals.clear();
        // A lingering call answers retransmissions with the ACKs and
        // replies it already built: the INVITE (and its SDP) is never sent
        // again, so memory follows calls in flight, not calls placed. Its
        // Via and Route stay: a final response retransmitted (or first
        // arriving) after the end is ACKed in the INVITE's transaction.
        self.invite_bytes = Vec::new();
        self.invite.body = Vec::new();
        self.invite.headers.keep_only(&["Via", "Route"]);
        self.params.extra_headers = Vec::new();
        self.sdp_sent.0 = Vec::new();
        self.shed();
        // Keep answering retransmissions (final responses, 200s, BYEs) for
        // 64*T1, as timer D and the UAS's 2xx retransmissions require; a
        // fork's BYE still in flight keeps the call until it is done.
        let mut linger = now + 64 * out.cfg.timers.t1;
        for tx in self.others.iter().filter(|t| !t.done) {
            linger = linger.max(tx.timer_f);
        }
        self.linger_until = Some(linger);
        tracing::debug!(call_id = %self.call_id, outcome = outcome.name(), "call ended");
        out.events
            .push_back((self.id, CallEvent::Ended(self.summary.clone())));
        // Told: the ended call keeps the summary's scalars only.
        self.summary.codes = Vec::new();
    }

    /// Gives back what an ended call no longer needs: finished
    /// transactions keep only what matches their retransmitted responses.
    /// Called at the end and after each event of an ended call, so what
    /// lingers for 64*T1 is small.
    fn shed(&mut self) {
        if self.cancel.as_ref().is_some_and(|c| c.done) {
            self.cancel = None;
        }
        // A transaction still running (a fork's BYE, its digest retry)
        // keeps the call until it times out at the latest.
        let running = self
            .others
            .iter()
            .chain(self.bye.as_ref())
            .filter(|t| !t.done)
            .map(|t| t.timer_f)
            .max();
        if let (Some(l), Some(f)) = (&mut self.linger_until, running) {
            *l = (*l).max(f);
        }
        self.others.retain(|t| !t.done || t.ack.is_some());
        for tx in self.others.iter_mut().chain(self.bye.as_mut()) {
            if tx.done {
                tx.shed();
            }
        }
    }

    /// A request in the transaction of the INVITE numbered `n` sent to
    /// `uri` with `via`: its branch, Request-URI, Route, From, Call-ID and
    /// CSeq number, with `to` (a CANCEL, RFC 3261 9.1; the ACK of a
    /// non-2xx final response, 17.1.1.3).
    fn in_invite_tx(&self, method: Method, uri: &str, via: &str, to: &str, n: u32) -> Request {
        let mut q = Request::new(method.clone(), uri.to_string());
        let h = &mut q.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        for route in self.invite.headers.get_all("Route") {
            h.push("Route", route);
        }
        h.push("From", self.from.clone());
        h.push("To", to.to_string());
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{n} {method}"));
        q
    }

    /// The ACK of the non-2xx final response `r` to the INVITE numbered
    /// `n` sent to `uri` with `via` (the response's To, with its tag).
    fn non_2xx_ack(&self, uri: &str, via: &str, r: &Response, n: u32) -> Vec<u8> {
        let to = r.headers.get("To").unwrap_or(&self.to);
        self.in_invite_tx(Method::Ack, uri, via, to, n).encode()
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

    /// A new request in the call's dialog, with the next CSeq.
    fn in_dialog(&mut self, method: Method, out: &mut Out<'_>) -> Request {
        self.cseq += 1;
        self.dialog_request_at(method, self.cseq, out)
    }

    /// A request in the call's dialog with CSeq `cseq` (an ACK takes its
    /// INVITE's).
    fn dialog_request_at(&self, method: Method, cseq: u32, out: &mut Out<'_>) -> Request {
        let via = out.via();
        dialog_request(
            method,
            &self.remote_target,
            &self.route,
            &self.from,
            &self.dialog_to(),
            &self.call_id,
            cseq,
            via,
        )
    }

    fn send_cancel(&mut self, now: Instant, reason: CancelReason, out: &mut Out<'_>) {
        self.send_cancel_request(now, out);
        // RFC 3261 9.1: if no final response comes within 64*T1 of the
        // CANCEL, the INVITE transaction is considered gone.
        self.cancel_deadline = Some(now + 64 * out.cfg.timers.t1);
        self.cancel_reason = Some(reason);
        self.state = State::Cancelling;
        tracing::debug!(call_id = %self.call_id, "CANCEL sent");
    }

    /// Sends a CANCEL of the current INVITE transaction (kept in `cancel`
    /// for its retransmissions and response), the call's state untouched.
    fn send_cancel_request(&mut self, now: Instant, out: &mut Out<'_>) {
        let dest = self.invite_dest();
        let c = self.in_invite_tx(
            Method::Cancel,
            &self.invite.uri,
            &self.invite_via(),
            &self.to,
            self.invite_cseq,
        );
        let t = out.cfg.timers;
        // The CANCEL has no kind of its own: it is kept apart in `cancel`.
        let mut tx = ClientTx::new(now, TxKind::Bye, c, t, out.cfg.transport.reliable());
        tx.dest = dest;
        out.send(dest, tx.bytes.clone());
        self.cancel = Some(tx);
    }

    fn send_bye(&mut self, now: Instant, out: &mut Out<'_>) {
        let dest = self.dest();
        let bye = self.in_dialog(Method::Bye, out);
        let mut tx = ClientTx::new(
            now,
            TxKind::Bye,
            bye,
            out.cfg.timers,
            out.cfg.transport.reliable(),
        );
        tx.dest = dest;
        out.send(dest, tx.bytes.clone());
        self.bye = Some(tx);
        // Until a 2xx (or 481) says the far end has let the call go.
        self.summary.hangup_unconfirmed = true;
        self.state = State::Closing;
        self.session_timer = None;
        self.kept_finals.clear();
    }

    /// Starts a client transaction of `kind` for `request` and sends it.
    fn start_tx(&mut self, now: Instant, kind: TxKind, request: Request, out: &mut Out<'_>) {
        let dest = self.dest();
        self.start_tx_to(now, kind, request, dest, out);
    }

    /// [`Call::start_tx`] to `dest`.
    fn start_tx_to(
        &mut self,
        now: Instant,
        kind: TxKind,
        request: Request,
        dest: Option<SocketAddr>,
        out: &mut Out<'_>,
    ) {
        let mut tx = ClientTx::new(
            now,
            kind,
            request,
            out.cfg.timers,
            out.cfg.transport.reliable(),
        );
        tx.dest = dest;
        out.send(dest, tx.bytes.clone());
        self.others.retain(|t| !t.done);
        self.others.push(tx);
    }

    fn record_code(&mut self, code: u16) {
        if self.summary.codes.last() != Some(&code) {
            self.summary.codes.push(code);
        }
    }

    /// The digest answer to a 401/407 `r` for `request`, when we have
    /// credentials and can read the challenge.
    fn authorize(
        &mut self,
        r: &Response,
        request: &Request,
        out: &mut Out<'_>,
    ) -> Option<(&'static str, String)> {
        let creds = self.params.credentials.clone()?;
        let proxy = r.code == 407;
        let header = auth::challenge_header(r.code);
        match auth::first_answerable(r.headers.get_all(header), proxy) {
            Some(Ok(ch)) => {
                let nc = self.nonce_counts.next(&ch.nonce);
                let cnonce = out.token();
                let value =
                    ch.authorization(&creds, request.method.as_str(), &request.uri, &cnonce, nc);
                Some((ch.answer_header(), value))
            }
            Some(Err(e)) => {
                tracing::warn!(call_id = %self.call_id, "cannot answer challenge: {e}");
                None
            }
            None => {
                tracing::warn!(call_id = %self.call_id, code = r.code, "challenge without {header}");
                None
            }
        }
    }

    fn on_response(&mut self, now: Instant, r: &Response, out: &mut Out<'_>) {
        let dest = self.invite_dest();
        let Ok((n, method)) = message::cseq(&r.headers) else {
            return;
        };
        let branch = message::top_branch(&r.headers).unwrap_or_default();
        tracing::trace!(call_id = %self.call_id, code = r.code, branch, "response");
        match method {
            Method::Invite
                if self.invite_branches.iter().any(|b| b == branch)
                    || (self.resumed && (200..300).contains(&r.code)) =>
            {
                if n == self.invite_cseq || (200..300).contains(&r.code) {
                    self.on_invite_response(now, n, r, out)
                } else {
                    // A retransmitted final response to an INVITE we
                    // replaced (digest retry, redirect): ACK it again.
                    out.stats.retransmissions += 1;
                    if let Some(a) = &self.ack_final
                        && self.ack_final_cseq == n
                    {
                        out.send(dest, a.clone());
                    } else if r.code >= 300
                        && let Some(old) = self.replaced.iter().find(|o| o.cseq == n)
                    {
                        // A destination failed over from ends its INVITE
                        // late: its final response is ACKed in its own
                        // transaction, where that INVITE went, or it is
                        // retransmitted until its Timer H.
                        let ack = self.non_2xx_ack(&old.uri, &old.via, r, n);
                        out.send(old.dest, ack);
                    }
                }
            }
            Method::Cancel => match &mut self.cancel {
                Some(c) if c.matches(branch, &method, n) => {
                    if r.code >= 200 {
                        c.done = true;
                    }
                }
                _ => out.stats.stray += 1,
            },
            _ => {
                if self
                    .bye
                    .as_ref()
                    .is_some_and(|b| b.matches(branch, &method, n))
                {
                    self.on_tx_response(now, None, r, out);
                } else if let Some(i) = self
                    .others
                    .iter()
                    .position(|t| t.matches(branch, &method, n))
                {
                    self.on_tx_response(now, Some(i), r, out);
                } else {
                    out.stats.stray += 1;
                    tracing::debug!(call_id = %self.call_id, code = r.code, "response matching no transaction dropped");
                }
            }
        }
    }

    /// A response to our BYE (`slot` None) or to one of `others`.
    fn on_tx_response(
        &mut self,
        now: Instant,
        slot: Option<usize>,
        r: &Response,
        out: &mut Out<'_>,
    ) {
        let tx = match slot {
            None => self.bye.as_mut(),
            Some(i) => self.others.get_mut(i),
        };
        let Some(tx) = tx else { return };
        let dest = tx.dest;
        if r.code < 200 {
            // A provisional response ends an INVITE's retransmissions
            // (RFC 3261 17.1.1.2: Proceeding); a non-INVITE's go on every
            // T2 (17.1.2.2).
            if !tx.done {
                if tx.request.method == Method::Invite {
                    tx.next_e = None;
                } else if let Some((at, _)) = tx.next_e {
                    tx.next_e = Some((at, out.cfg.timers.t2));
                }
            }
            return;
        }
        let kind = tx.kind;
        let is_invite = tx.request.method == Method::Invite;
        if tx.done {
            // A retransmitted final response: a refresh re-INVITE's 2xx
            // is ACKed again; anything else needs nothing.
            out.stats.retransmissions += 1;
            if let Some(a) = &tx.ack
                && (200..300).contains(&r.code)
            {
                out.send(dest, a.clone());
            }
            return;
        }
        tx.done = true;
        let request = tx.request.clone();
        let tries = tx.auth_tries;
        if is_invite && r.code >= 300 {
            // The non-2xx final of a re-INVITE is ACKed in its transaction.
            let mut ack = Request::new(Method::Ack, request.uri.clone());
            let h = &mut ack.headers;
            h.push("Via", request.headers.get("Via").unwrap_or_default());
            h.push("Max-Forwards", "70");
            for route in request.headers.get_all("Route") {
                h.push("Route", route);
            }
            h.push("From", self.from.clone());
            h.push("To", r.headers.get("To").unwrap_or_default());
            h.push("Call-ID", self.call_id.clone());
            h.push("CSeq", format!("{} ACK", tx.cseq));
            out.send(dest, ack.encode());
        }
        // Challenges are answered on every request we send (RFC 3261
        // 22.2), once per transaction and kind: a proxy's 407 and then the
        // far end's 401 (two realms) are both answered, the first answer
        // kept (22.3), but the same challenge twice means the credentials
        // are refused.
        if (r.code == 401 || r.code == 407)
            && may_answer(r, &request, tries)
            && let Some((header, value)) = self.authorize(r, &request, out)
        {
            let mut again = request;
            self.cseq += 1;
            again.headers.set("Via", out.via());
            again
                .headers
                .set("CSeq", format!("{} {}", self.cseq, again.method));
            again.headers.set(header, value);
            let mut tx = ClientTx::new(
                now,
                kind,
                again,
                out.cfg.timers,
                out.cfg.transport.reliable(),
            );
            tx.auth_tries = tries + 1;
            tx.dest = dest;
            out.send(dest, tx.bytes.clone());
            tracing::debug!(call_id = %self.call_id, method = %tx.request.method, "answering digest challenge");
            match slot {
                None => self.bye = Some(tx),
                Some(_) => self.others.push(tx),
            }
            return;
        }
        match kind {
            TxKind::Bye => {
                if (200..300).contains(&r.code) || r.code == 481 {
                    self.summary.hangup_unconfirmed = false;
                }
                if self.state == State::Closing {
                    let outcome = self.closing_outcome();
                    self.end(now, outcome, out);
                }
            }
            TxKind::ForkBye | TxKind::Prack => {}
            TxKind::Refresh => {
                if (200..300).contains(&r.code) {
                    // Our refresh is a target refresh too: its 2xx's
                    // Contact is the peer's target from now on, the ACK's
                    // included.
                    self.refresh_target(r.headers.get("Contact"));
                    if is_invite {
                        let n = message::cseq(&r.headers).map_or(self.cseq, |(n, _)| n);
                        let ack = with_credentials_of(
                            self.dialog_request_at(Method::Ack, n, out),
                            &request,
                        );
                        out.send(dest, ack.clone());
                        if let Some(Some(tx)) = slot.map(|i| self.others.get_mut(i)) {
                            tx.ack = Some(ack);
                        }
                    }
                    // A 2xx without Session-Expires ends session timing
                    // (RFC 4028 7.4).
                    self.session_timer = SessionTimer::from_headers(&r.headers, true, now);
                } else if r.code == 422 && self.state == State::Confirmed {
                    // Our interval is below the peer's Min-SE (RFC 4028
                    // 7.4): at once again with the interval it asks for.
                    let min_se = r
                        .headers
                        .get("Min-SE")
                        .and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok())
                        .filter(|m| (MIN_SE..=86_400).contains(m));
                    match (min_se, &mut self.session_timer) {
                        (Some(m), Some(t)) if Duration::from_secs(m) > t.interval => {
                            t.interval = Duration::from_secs(m);
                            self.send_refresh(now, out);
                        }
                        // Nothing larger to try: the session cannot be
                        // kept alive by refreshes.
                        _ => {
                            self.summary.hangup = Some(Side::Local);
                            self.send_bye(now, out);
                        }
                    }
                } else if r.code == 491 && self.state == State::Confirmed {
                    // Glare: the Call-ID is ours, so we try again after
                    // 2.1 to 4 s (RFC 3261 14.1).
                    let wait = Duration::from_millis(out.rng.random_range(2_100..=4_000));
                    if let Some(t) = &mut self.session_timer {
                        t.at = now + wait;
                    }
                } else if matches!(r.code, 408 | 481) && self.state == State::Confirmed {
                    // RFC 4028 10: the session is gone.
                    self.summary.hangup = Some(Side::Local);
                    self.send_bye(now, out);
                }
            }
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

    /// The encoded ACK of a 2xx to our INVITE with CSeq `cseq`: it carries
    /// that INVITE's credentials (RFC 3261 13.2.2.4: an edge that checks
    /// every request would drop a bare ACK and end the call at timer H).
    fn ack_of_2xx(&self, ack: Request, cseq: u32) -> Vec<u8> {
        if message::cseq(&self.invite.headers).is_ok_and(|(n, _)| n == cseq) {
            with_credentials_of(ack, &self.invite)
        } else {
            ack.encode()
        }
    }

    /// A request in the (early or forked) dialog a response `r` to our
    /// INVITE set up: its Contact, Record-Route and To tag.
    fn request_in_dialog_of(
        &self,
        r: &Response,
        method: Method,
        cseq: u32,
        out: &mut Out<'_>,
    ) -> Request {
        let target = r
            .headers
            .get("Contact")
            .map_or(self.invite.uri.clone(), |c| message::uri_of(c).to_string());
        let to = r.headers.get("To").unwrap_or(&self.to);
        let via = out.via();
        dialog_request(
            method,
            &target,
            &route_set(r),
            &self.from,
            to,
            &self.call_id,
            cseq,
            via,
        )
    }

    /// ACKs and hangs up a dialog a 2xx created that the call does not
    /// keep: another fork's answer, or an answer after the call ended.
    fn tear_down_fork(&mut self, now: Instant, n: u32, r: &Response, out: &mut Out<'_>) {
        // The fork's own dialog: its route set and Contact.
        let target = r
            .headers
            .get("Contact")
            .map(message::uri_of)
            .unwrap_or_default();
        let dest = next_hop(&route_set(r), target).or(self.invite_dest());
        let tag = r
            .headers
            .get("To")
            .and_then(message::tag_of)
            .map(str::to_string);
        let ack = self.ack_of_2xx(self.request_in_dialog_of(r, Method::Ack, n, out), n);
        out.send(dest, ack.clone());
        self.cseq += 1;
        let bye = self.request_in_dialog_of(r, Method::Bye, self.cseq, out);
        self.start_tx_to(now, TxKind::ForkBye, bye, dest, out);
        self.forks.push(Fork { tag, ack, dest });
        self.summary.extra_answers += 1;
        tracing::info!(call_id = %self.call_id, "a second answer (forked or late) was acknowledged and hung up");
        // Keep the call long enough to finish that BYE.
        if self.state == State::Done
            && let Some(l) = &mut self.linger_until
        {
            *l = (*l).max(now + 64 * out.cfg.timers.t1);
        }
    }

    /// A reliable provisional response gets its PRACK (RFC 3262 4).
    fn prack(&mut self, now: Instant, r: &Response, out: &mut Out<'_>) {
        let Some(rseq) = r
            .headers
            .get("RSeq")
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return;
        };
        // The first one of an early dialog (a fork: its To tag) starts its
        // sequence, each fork numbering its own (RFC 3262 4, errata 4600);
        // later ones must be next in order. A retransmission is not
        // PRACKed again (our PRACK is retransmitted by its own
        // transaction).
        let tag = r
            .headers
            .get("To")
            .and_then(message::tag_of)
            .map(str::to_string);
        match self.last_rseq.iter_mut().find(|(t, _)| *t == tag) {
            Some((_, last)) if rseq != last.wrapping_add(1) => {
                out.stats.retransmissions += 1;
                return;
            }
            Some((_, last)) => *last = rseq,
            None => self.last_rseq.push((tag, rseq)),
        }
        self.cseq += 1;
        let mut prack = self.request_in_dialog_of(r, Method::Prack, self.cseq, out);
        prack
            .headers
            .push("RAck", format!("{rseq} {} INVITE", self.invite_cseq));
        self.start_tx(now, TxKind::Prack, prack, out);
    }

    fn on_invite_response(&mut self, now: Instant, n: u32, r: &Response, out: &mut Out<'_>) {
        let dest = self.dest();
        let code = r.code;
        if n == self.invite_cseq {
            self.heard = true;
            self.failover_at = None;
        }
        let elapsed = now.saturating_duration_since(self.sent_at);
        if self.summary.first_response_after.is_none() {
            self.summary.first_response_after = Some(elapsed);
        }
        if code < 200 {
            if !matches!(
                self.state,
                State::Calling | State::Proceeding | State::Cancelling
            ) {
                if self.cancel_superseded && n == self.invite_cseq {
                    // Answered on an earlier INVITE: this one may now be
                    // cancelled.
                    self.cancel_superseded = false;
                    self.send_cancel_request(now, out);
                    return;
                }
                out.stats.retransmissions += 1;
                return;
            }
            if code > 100 && has_option(&r.headers, "Require", "100rel") {
                self.prack(now, r, out);
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
                // The phone rings from the first 180 or 183 (not a 181
                // forwarded or a 182 queued): the full ring time from here,
                // never shorter than from the INVITE.
                let rings = (code == 180 || code == 183) && n == self.invite_cseq && !self.ringing;
                if rings {
                    self.ringing = true;
                    self.ring_deadline = now + self.params.ring_timeout.get();
                }
                let early_media = sdp::parse(&r.body).is_some();
                if early_media {
                    let tag = r.headers.get("To").and_then(message::tag_of);
                    if !self.early_sdp.iter().any(|(t, _)| t.as_deref() == tag) {
                        self.early_sdp
                            .push((tag.map(str::to_string), r.body.clone()));
                    }
                }
                out.events.push_back((
                    self.id,
                    CallEvent::Progress {
                        code,
                        early_media,
                        rings,
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
            if let Some(ack) = &self.ack_2xx
                && tag == self.remote_tag
            {
                // A retransmitted 200 (our ACK was lost).
                out.stats.retransmissions += 1;
                out.send(dest, ack.clone());
                return;
            }
            if let Some(f) = self.forks.iter().find(|f| f.tag == tag) {
                out.stats.retransmissions += 1;
                out.send(f.dest, f.ack.clone());
                return;
            }
            if self.ack_2xx.is_some() || self.state == State::Done {
                // RFC 3261 13.2.2.4: another fork answered, or someone
                // answered after we gave up. ACK it and hang up at once.
                self.tear_down_fork(now, n, r, out);
                return;
            }
            self.record_code(code);
            self.summary.final_code = Some(code);
            self.remote_tag = tag;
            if let Some(c) = r.headers.get("Contact") {
                self.remote_target = message::uri_of(c).to_string();
            }
            self.route = route_set(r);
            self.dialog_hop = next_hop(&self.route, &self.remote_target);
            self.peer_allows_update = r
                .headers
                .get_all("Allow")
                .flat_map(|v| v.split(','))
                .any(|m| m.trim().eq_ignore_ascii_case("UPDATE"));
            let ack = self.ack_of_2xx(self.dialog_request_at(Method::Ack, n, out), n);
            // The dialog's next hop from now on (RFC 3261 13.2.2.4).
            out.send(self.dest(), ack.clone());
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
            if n != self.invite_cseq {
                // A destination we failed over from answered late: the
                // call is its, and the INVITE still out elsewhere is
                // cancelled (at once if it heard a provisional response,
                // else at its first).
                if self.heard {
                    self.send_cancel_request(now, out);
                } else {
                    self.cancel_superseded = true;
                }
            }
            self.state = State::Confirmed;
            self.answered_at = Some(now);
            self.talk_deadline = self.params.max_talk.map(|t| now + t);
            self.session_timer = SessionTimer::from_headers(&r.headers, true, now);
            // The answer the 200 carries, else the one its early dialog's
            // provisional response gave.
            let media = sdp::parse(&r.body).or_else(|| {
                let tag = r.headers.get("To").and_then(message::tag_of);
                self.early_sdp
                    .iter()
                    .find(|(t, _)| t.as_deref() == tag)
                    .and_then(|(_, body)| sdp::parse(body))
            });
            self.codec = media.as_ref().and_then(sdp::Media::codec);
            out.events.push_back((
                self.id,
                CallEvent::Answered {
                    media,
                    ack_latency: Duration::ZERO,
                    headers: r.headers.clone(),
                    dialog: DialogState {
                        remote_tag: self.remote_tag.clone().unwrap_or_default(),
                        remote_target: self.remote_target.clone(),
                        route: self.route.clone(),
                        cseq: self.cseq,
                    },
                },
            ));
            return;
        }
        // 3xx-6xx: ACK in the INVITE transaction (same branch), then decide.
        if self.state == State::Done {
            if let Some(a) = &self.ack_final
                && self.ack_final_cseq == n
            {
                // The same ACK again for a retransmission after the end.
                out.stats.retransmissions += 1;
                out.send(self.invite_dest(), a.clone());
                return;
            }
            if self.invite.headers.get("Via").is_none() {
                // A call brought back from its lingering record keeps no
                // INVITE to build another ACK from.
                out.stats.stray += 1;
                return;
            }
        }
        let ack = self.non_2xx_ack(&self.invite.uri, &self.invite_via(), r, n);
        out.send(self.invite_dest(), ack.clone());
        let repeat = self.ack_final.is_some() && self.summary.final_code == Some(code);
        self.ack_final = Some(ack);
        self.ack_final_cseq = n;
        if self.ack_2xx.is_some() && self.state != State::Done {
            // The call was answered on another INVITE (a destination we
            // failed over from): this one's end (the 487 to our CANCEL, a
            // busy, a time-out) says nothing about the call, which goes
            // on.
            self.cancel_superseded = false;
            return;
        }
        if repeat || self.state == State::Done {
            out.stats.retransmissions += 1;
            return;
        }
        self.record_code(code);
        self.timer_a = None;
        self.timer_b = None;
        if self.retry_invite(now, r, out) {
            return;
        }
        // RFC 3263 4.3: a 503 sends the request to the next destination.
        if code == 503 && self.fail_over(now, out) {
            return;
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

    /// The final responses a new INVITE can overcome: a digest challenge
    /// (once), 421 asking for reliable provisional responses, 422 asking
    /// for a longer session interval (once each), and a redirect to the
    /// same number (at most [`MAX_REDIRECTS`]). True when one was sent.
    fn retry_invite(&mut self, now: Instant, r: &Response, out: &mut Out<'_>) -> bool {
        if self.cancel_reason.is_some() {
            return false;
        }
        let code = r.code;
        if code == 401 || code == 407 {
            // As on other requests: each kind of challenge once, and once
            // more when only the nonce went stale.
            if !may_answer(r, &self.invite, self.auth_tries) {
                return false;
            }
            let invite = self.invite.clone();
            let Some((header, value)) = self.authorize(r, &invite, out) else {
                return false;
            };
            self.auth_tries += 1;
            self.resend_invite(now, out, |inv| inv.headers.set(header, value));
            tracing::debug!(call_id = %self.call_id, code, "answering digest challenge");
            return true;
        }
        if code == 421 && self.extension_retries < 2 {
            let unsupported: Vec<String> = r
                .headers
                .get_all("Require")
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            if unsupported.is_empty() || unsupported.iter().any(|t| t != "100rel" && t != "timer") {
                return false;
            }
            if has_option(&self.invite.headers, "Require", "100rel") {
                return false;
            }
            self.extension_retries += 1;
            self.resend_invite(now, out, |inv| inv.headers.set("Require", "100rel"));
            return true;
        }
        if code == 422 && self.extension_retries < 2 {
            let Some(min_se) = r
                .headers
                .get("Min-SE")
                .and_then(|v| v.split(';').next()?.trim().parse::<u64>().ok())
            else {
                return false;
            };
            // A session interval over a day is not one to keep a call up on.
            if !(MIN_SE..=86_400).contains(&min_se)
                || self
                    .invite
                    .headers
                    .get("Min-SE")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .is_some_and(|sent| sent >= min_se)
            {
                return false;
            }
            self.extension_retries += 1;
            self.resend_invite(now, out, |inv| {
                inv.headers.set("Session-Expires", min_se.to_string());
                inv.headers.set("Min-SE", min_se.to_string());
            });
            return true;
        }
        if (300..400).contains(&code) && code != 305 && code != 380 {
            if self.redirects >= MAX_REDIRECTS {
                return false;
            }
            // Only a redirect to the same number is followed: a new number
            // was never screened against the registries and calling hours.
            // Contacts are tried by preference, the highest q first (RFC
            // 3261 8.1.3.4, 20.10).
            let want = user_digits(&self.params.target);
            let mut contacts: Vec<(f32, &str)> = message::list_entries(&r.headers, "Contact")
                .into_iter()
                .map(|e| {
                    let q = message::param(e, "q")
                        .and_then(|q| q.parse::<f32>().ok())
                        .filter(|q| q.is_finite())
                        .unwrap_or(1.0);
                    (q, message::uri_of(e))
                })
                .collect();
            contacts.sort_by(|a, b| b.0.total_cmp(&a.0));
            let Some(uri) = contacts
                .into_iter()
                .map(|(_, u)| u)
                .find(|u| {
                    (super::after_scheme(u, "sip:").is_some()
                        || super::after_scheme(u, "sips:").is_some())
                        && want.is_some()
                        && user_digits(u) == want
                })
                .map(request_uri_of)
            else {
                tracing::warn!(call_id = %self.call_id, code, "redirect to another number (or none) not followed");
                return false;
            };
            self.redirects += 1;
            // The new request goes where its Request-URI says (RFC 3261
            // 8.1.3.4, RFC 3263): to the Contact's address when it names
            // one; a host name stays with the destinations already in use
            // (the trunk's, resolved when the call was placed), as this
            // sans-IO layer does no lookups.
            self.remember_replaced();
            if let Some(hop) = next_hop(&[], &uri) {
                self.params.destinations = vec![hop];
                self.dest_idx = 0;
            }
            self.remote_target = uri.clone();
            // The new target's phone: its first 180 or 183 starts the
            // ring time again.
            self.ringing = false;
            // Credentials answered for the old Request-URI name it in
            // their `uri=` and would be refused at the new target: a new
            // challenge there is answered afresh.
            self.resend_invite(now, out, |inv| {
                inv.uri = uri;
                inv.headers.remove("Authorization");
                inv.headers.remove("Proxy-Authorization");
            });
            self.auth_tries = 0;
            tracing::debug!(call_id = %self.call_id, code, "following a redirect");
            return true;
        }
        false
    }

    /// The SDP answer to a re-INVITE or UPDATE offer (RFC 3264 6, 8): the
    /// first G.711 codec of the offer, telephone-event when offered (under
    /// the offer's number for it), and
    /// the direction that answers the offer's (hold gives recvonly). `None`
    /// when nothing offered is acceptable.
    fn answer_offer(&mut self, offer: &sdp::Media, body: &[u8]) -> Option<Vec<u8>> {
        // RFC 3264 8.3.2 lets the answer take any codec the offer lists:
        // the one in use, while listed, so the legs' audio (already
        // flowing, and relayed as it is) keeps its law; else the offer's
        // first we know.
        let codec = self
            .codec
            .filter(|c| offer.payloads.contains(c))
            .or_else(|| offer.codec())?;
        self.codec = Some(codec);
        let mut payloads = vec![codec];
        // Events under the number the offer maps them to (RFC 3264 6.1,
        // RFC 4733), not a number of our own.
        if let Some(pt) = offer.telephone_event {
            payloads.push(pt);
        }
        self.next_description(payloads, offer.direction.answer());
        // As many streams as the offer, the others refused (RFC 3264 6).
        Some(
            sdp::answer(
                body,
                self.sdp_session,
                self.sdp_version,
                self.params.media_addr,
                &self.sdp_sent.0,
                self.sdp_sent.1,
            )
            .into_bytes(),
        )
    }

    /// The description we send next has `payloads` and `direction`: its
    /// origin's version one higher than the last one sent when either
    /// differs from it (RFC 3264 8, RFC 4566 5.2).
    fn next_description(&mut self, payloads: Vec<u8>, direction: sdp::Direction) {
        if self.sdp_sent.0 != payloads || self.sdp_sent.1 != direction {
            self.sdp_version += 1;
            self.sdp_sent = (payloads, direction);
        }
    }

    /// Our session description with `payloads` and `direction`
    /// ([`Call::next_description`]).
    fn describe(&mut self, payloads: Vec<u8>, direction: sdp::Direction) -> Vec<u8> {
        self.next_description(payloads, direction);
        sdp::session(
            self.sdp_session,
            self.sdp_version,
            self.params.media_addr,
            &self.sdp_sent.0,
            self.sdp_sent.1,
        )
        .into_bytes()
    }

    fn reply(&mut self, req: &Request, n: u32, response: Response, out: &mut Out<'_>) -> Vec<u8> {
        let bytes = response.encode();
        out.reply(bytes.clone());
        self.last_reply = Some((n, req.method.clone(), bytes.clone()));
        bytes
    }

    /// Keeps the final response `bytes` to re-INVITE `n` for timers G and H
    /// (see [`ServerOk`]).
    fn keep_final(
        &mut self,
        now: Instant,
        n: u32,
        bytes: Vec<u8>,
        success: bool,
        offered: bool,
        out: &mut Out<'_>,
    ) {
        let t = out.cfg.timers;
        // The oldest refusal makes room (a 2xx, at most one, never does:
        // its loss would end the call).
        if self.kept_finals.len() >= MAX_KEPT_FINALS
            && let Some(i) = self.kept_finals.iter().position(|ok| !ok.success)
        {
            self.kept_finals.remove(i);
        }
        self.kept_finals.push(ServerOk {
            to: out.source,
            cseq: n,
            bytes,
            next_g: (!out.cfg.transport.reliable()).then(|| (now + t.t1, t.t1)),
            timer_h: now + 64 * t.t1,
            offered,
            success,
        });
    }

    /// A 2xx to a re-INVITE still awaits its ACK.
    fn ok_pending(&self) -> bool {
        self.kept_finals.iter().any(|ok| ok.success)
    }

    /// Refuses a re-INVITE or UPDATE with `r`; a re-INVITE's refusal is
    /// kept for timers G and H until its ACK (RFC 3261 17.2.1).
    fn refuse_session(
        &mut self,
        now: Instant,
        req: &Request,
        n: u32,
        r: Response,
        out: &mut Out<'_>,
    ) {
        let bytes = self.reply(req, n, r, out);
        if req.method == Method::Invite {
            self.keep_final(now, n, bytes, false, false, out);
        }
    }

    /// A re-INVITE or UPDATE from the peer: a new offer (hold, resume, new
    /// address) or a session refresh.
    fn on_session_request(&mut self, now: Instant, req: &Request, n: u32, out: &mut Out<'_>) {
        // RFC 3261 8.2.3: a body of a type we cannot read (one without a
        // Content-Type is read as SDP, as peers that omit it mean).
        if !req.body.is_empty()
            && req.headers.get("Content-Type").is_some_and(|t| {
                !t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/sdp"))
            })
        {
            let mut r = Response::to(req, 415, "Unsupported Media Type", None);
            r.headers.push("Accept", "application/sdp");
            self.refuse_session(now, req, n, r, out);
            return;
        }
        // Our answer (or, to an offerless re-INVITE, our offer) is SDP: a
        // peer whose Accept refuses it gets 406 (RFC 3261 21.4.7; RFC 4475
        // sdp01).
        let answers_with_sdp = !req.body.is_empty() || req.method == Method::Invite;
        if answers_with_sdp && !accepts_sdp(&req.headers) {
            let r = Response::to(req, 406, "Not Acceptable", None);
            self.refuse_session(now, req, n, r, out);
            return;
        }
        // A peer that does not say it supports timers cannot refresh: we
        // are the refresher, and no Require goes back (RFC 4028 9).
        let peer_supports = has_option(&req.headers, "Supported", "timer")
            || has_option(&req.headers, "Require", "timer");
        // RFC 4028 9: an interval below our minimum is refused with 422 and
        // our Min-SE when the peer supports timers, as it can ask again
        // with a longer one; one that does not could not, so its interval
        // is raised to the minimum instead (RFC 4028 errata 1687).
        if peer_supports
            && req
                .headers
                .get("Session-Expires")
                .and_then(session_expires_asked)
                .is_some_and(|secs| secs < MIN_SE)
        {
            let mut r = Response::to(req, 422, "Session Interval Too Small", None);
            r.headers.push("Min-SE", MIN_SE.to_string());
            self.refuse_session(now, req, n, r, out);
            return;
        }
        let offer = if req.body.is_empty() {
            None
        } else {
            match sdp::parse(&req.body) {
                Some(m) => Some(m),
                None => {
                    let mut r = Response::to(req, 488, "Not Acceptable Here", None);
                    r.headers
                        .push("Warning", "304 dialler \"no usable audio stream\"");
                    self.refuse_session(now, req, n, r, out);
                    return;
                }
            }
        };
        let body = match &offer {
            Some(m) => match self.answer_offer(m, &req.body) {
                Some(b) => Some(b),
                None => {
                    let mut r = Response::to(req, 488, "Not Acceptable Here", None);
                    r.headers
                        .push("Warning", "305 dialler \"only PCMU and PCMA\"");
                    self.refuse_session(now, req, n, r, out);
                    return;
                }
            },
            // An offerless re-INVITE gets our offer (the ACK answers it);
            // an UPDATE without SDP is a refresh only.
            None if req.method == Method::Invite => Some(self.describe(
                vec![sdp::PT_PCMU, sdp::PT_PCMA, sdp::PT_TELEPHONE_EVENT],
                sdp::Direction::SendRecv,
            )),
            None => None,
        };
        let mut ok = Response::to(req, 200, "OK", None);
        ok.headers
            .push("Contact", out.contact(&self.params.from_user));
        ok.headers.push("Allow", ALLOW);
        // A refresh that names the session interval is answered with it
        // (RFC 4028 9), and restarts our expiry clock.
        if let Some(se) = req.headers.get("Session-Expires")
            && let Some(secs) = session_expires_secs(se)
        {
            let params = format!(">{se}");
            let refresher = match message::param(&params, "refresher") {
                _ if !peer_supports => "uas",
                Some(r) if r.eq_ignore_ascii_case("uas") => "uas",
                _ => "uac",
            };
            ok.headers
                .push("Session-Expires", format!("{secs};refresher={refresher}"));
            if peer_supports {
                ok.headers.push("Require", "timer");
            }
            // The peer sent the request, so it is the UAC of this refresh.
            if let Some(t) = SessionTimer::from_headers(&ok.headers, false, now) {
                self.session_timer = Some(t);
            }
        } else if let Some(t) = &mut self.session_timer {
            t.restart(now);
        }
        if let Some(b) = body {
            ok.headers.push("Content-Type", "application/sdp");
            ok.body = b;
        }
        let bytes = self.reply(req, n, ok, out);
        // A target refresh (RFC 3261 12.2.2): the peer's new Contact is
        // where the dialog's requests go from now on.
        self.refresh_target(req.headers.get("Contact"));
        if req.method == Method::Invite {
            self.keep_final(now, n, bytes, true, offer.is_none(), out);
        }
        if let Some(m) = offer {
            out.events
                .push_back((self.id, CallEvent::MediaChanged { media: m }));
        }
    }

    /// The ACK of our 2xx to an offerless re-INVITE: it carries the answer
    /// to the offer the 2xx made (a B2BUA moving the media after a
    /// transfer does this). A usable one moves the media; without one the
    /// media stays where it was, said in the log.
    fn on_answer_in_ack(&mut self, ack: &Request, out: &mut Out<'_>) {
        match sdp::parse(&ack.body) {
            Some(m) if m.codec().is_some() => {
                self.codec = m.codec();
                out.events
                    .push_back((self.id, CallEvent::MediaChanged { media: m }));
            }
            _ => {
                tracing::warn!(call_id = %self.call_id, "the ACK brought no usable answer to our offer: media unchanged");
            }
        }
    }

    /// The dialog's remote target from a target refresh's Contact (a
    /// request we accepted, or a 2xx to ours), and the next hop with it.
    fn refresh_target(&mut self, contact: Option<&str>) {
        if let Some(c) = contact {
            let uri = message::uri_of(c);
            if !uri.is_empty() && uri != self.remote_target {
                self.remote_target = uri.to_string();
                self.dialog_hop = next_hop(&self.route, &self.remote_target);
            }
        }
    }

    fn on_request(&mut self, now: Instant, req: &Request, out: &mut Out<'_>) {
        let n = message::cseq(&req.headers).map_or(0, |(n, _)| n);
        let (in_dialog, fork) = dialog_of(
            req,
            &self.local_tag,
            self.remote_tag
                .as_deref()
                .filter(|_| self.ack_2xx.is_some()),
            &self.forks,
        );
        match req.method {
            Method::Ack => {
                if in_dialog
                    && let Some(i) = self.kept_finals.iter().position(|ok| ok.cseq == n)
                    && self.kept_finals.remove(i).offered
                {
                    self.on_answer_in_ack(req, out);
                }
                return;
            }
            // Outside the dialog, a keep-alive probe: answered as is. In it,
            // an OPTIONS takes its turn in the CSeq order (RFC 3261 12.2.2)
            // below.
            Method::Options if !in_dialog => {
                out.reply(options_reply(req).encode());
                return;
            }
            _ => {}
        }
        if !in_dialog {
            let reply = if fork && req.method == Method::Bye {
                // The other branch hung up first: fine, it is going anyway.
                Response::to(req, 200, "OK", None)
            } else {
                out.stats.stray += 1;
                tracing::debug!(call_id = %self.call_id, method = %req.method, "request outside the dialog refused");
                // RFC 3261 8.2.6.2: a response without a To tag gets one.
                let tag = out.token();
                Response::to(req, 481, "Call/Transaction Does Not Exist", Some(&tag))
            };
            out.reply(reply.encode());
            return;
        }
        if answered_as_old(self.remote_cseq, self.last_reply.as_ref(), req, n, out) {
            return;
        }
        self.remote_cseq = Some(n);
        if req.method != Method::Cancel
            && let Some(r) = bad_extension(req)
        {
            // A re-INVITE's 420 is a final response like any refusal of
            // it: kept for timers G and H until its ACK.
            if req.method == Method::Invite && self.state == State::Confirmed {
                self.refuse_session(now, req, n, r, out);
            } else {
                self.reply(req, n, r, out);
            }
            return;
        }
        match req.method {
            Method::Bye => {
                if !matches!(self.state, State::Confirmed | State::Closing) {
                    let r = Response::to(req, 481, "Call/Transaction Does Not Exist", None);
                    self.reply(req, n, r, out);
                    return;
                }
                self.reply(req, n, Response::to(req, 200, "OK", None), out);
                if self.state == State::Confirmed {
                    self.summary.hangup = Some(Side::Remote);
                    self.end(now, Outcome::Answered, out);
                } else {
                    // Both sides hung up at once: the call is over either way.
                    let outcome = self.closing_outcome();
                    self.end(now, outcome, out);
                }
            }
            Method::Invite | Method::Update if self.state == State::Confirmed => {
                if self.ok_pending() && req.method == Method::Invite {
                    // RFC 3261 14.2: an INVITE while ours awaits its ACK.
                    let mut r = Response::to(req, 500, "Server Internal Error", None);
                    r.headers.push("Retry-After", "1");
                    self.refuse_session(now, req, n, r, out);
                    return;
                }
                if self.offer_pending(req) {
                    // Glare (RFC 3261 14.2, RFC 3311 5.2): our refresh's
                    // offer is out; the peer tries again later.
                    let r = Response::to(req, 491, "Request Pending", None);
                    self.refuse_session(now, req, n, r, out);
                    return;
                }
                self.on_session_request(now, req, n, out);
            }
            Method::Invite | Method::Update => {
                let r = Response::to(req, 481, "Call/Transaction Does Not Exist", None);
                self.reply(req, n, r, out);
            }
            Method::Options => {
                self.reply(req, n, options_reply(req), out);
            }
            _ => {
                let mut r = Response::to(req, 501, "Not Implemented", None);
                r.headers.push("Allow", ALLOW);
                self.reply(req, n, r, out);
            }
        }
    }

    /// Whether `req` (a re-INVITE, or an UPDATE with an offer) crosses an
    /// offer of ours still unanswered: our refresh re-INVITE in progress.
    fn offer_pending(&self, req: &Request) -> bool {
        (req.method == Method::Invite || !req.body.is_empty())
            && self
                .others
                .iter()
                .any(|t| !t.done && t.kind == TxKind::Refresh && t.request.method == Method::Invite)
    }

    /// Our session refresh (RFC 4028 7.4): UPDATE when the peer allows it,
    /// else a re-INVITE with the SDP we last sent.
    fn send_refresh(&mut self, now: Instant, out: &mut Out<'_>) {
        let Some(t) = self.session_timer else { return };
        let method = if self.peer_allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let mut req = self.in_dialog(method.clone(), out);
        let h = &mut req.headers;
        h.push("Contact", out.contact(&self.params.from_user));
        h.push("Supported", "timer");
        h.push(
            "Session-Expires",
            format!("{};refresher=uac", t.interval.as_secs()),
        );
        h.push("Min-SE", MIN_SE.to_string());
        if method == Method::Invite {
            h.push("Content-Type", "application/sdp");
            let (payloads, direction) = self.sdp_sent.clone();
            req.body = sdp::session(
                self.sdp_session,
                self.sdp_version,
                self.params.media_addr,
                &payloads,
                direction,
            )
            .into_bytes();
        }
        self.start_tx(now, TxKind::Refresh, req, out);
    }

    fn on_timeout(&mut self, now: Instant, out: &mut Out<'_>) {
        let dest = self.invite_dest();
        if self.state == State::Done {
            // Only a fork's BYE may still be running.
            self.retransmit(now, out);
            return;
        }
        if let Some((at, interval)) = self.timer_a
            && at <= now
        {
            out.send(dest, self.invite_bytes.clone());
            let next = interval * 2;
            self.timer_a = Some((now + next, next));
        }
        if self.state == State::Calling
            && !self.heard
            && self.failover_at.is_some_and(|f| f <= now)
            && self.fail_over(now, out)
        {
            return;
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
        let refresh_failed = self.retransmit(now, out);
        // RFC 3261 13.3.1.4: no ACK for our 2xx: end the session; for a
        // refusal the transaction is over (17.2.1).
        let mut unacked_ok = false;
        self.kept_finals.retain(|ok| {
            let over = ok.timer_h <= now;
            unacked_ok |= over && ok.success;
            !over
        });
        for ok in &mut self.kept_finals {
            if let Some((at, interval)) = ok.next_g
                && at <= now
            {
                out.send_reply(ok.to, ok.bytes.clone());
                let next = (interval * 2).min(out.cfg.timers.t2);
                ok.next_g = Some((now + next, next));
            }
        }
        if unacked_ok && self.state == State::Confirmed {
            tracing::warn!(call_id = %self.call_id, "no ACK to our 2xx of a re-INVITE: hanging up");
            self.summary.hangup = Some(Side::Local);
            self.send_bye(now, out);
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
        if self.state == State::Confirmed && refresh_failed {
            tracing::warn!(call_id = %self.call_id, "session refresh timed out: hanging up");
            self.summary.hangup = Some(Side::Local);
            self.send_bye(now, out);
            return;
        }
        if self.state == State::Confirmed
            && let Some(t) = self.session_timer
            && t.at <= now
        {
            if t.we_refresh {
                self.send_refresh(now, out);
                if let Some(t) = &mut self.session_timer {
                    t.restart(now);
                }
            } else {
                tracing::warn!(call_id = %self.call_id, "session expired without a refresh: hanging up");
                self.summary.hangup = Some(Side::Local);
                self.send_bye(now, out);
                return;
            }
        }
        if self.state == State::Confirmed && self.talk_deadline.is_some_and(|t| t <= now) {
            self.summary.hangup = Some(Side::Local);
            self.send_bye(now, out);
        }
    }

    /// Retransmits the client transactions due (timer E; timer A for a
    /// refresh re-INVITE) and closes those past timer F. True when a
    /// session refresh timed out.
    fn retransmit(&mut self, now: Instant, out: &mut Out<'_>) -> bool {
        let t2 = out.cfg.timers.t2;
        let mut refresh_failed = false;
        for tx in [self.cancel.as_mut(), self.bye.as_mut()]
            .into_iter()
            .flatten()
            .chain(self.others.iter_mut())
        {
            if tx.done {
                continue;
            }
            if tx.timer_f <= now {
                tx.done = true;
                refresh_failed |= tx.kind == TxKind::Refresh;
                continue;
            }
            if let Some((at, interval)) = tx.next_e
                && at <= now
            {
                out.send(tx.dest, tx.bytes.clone());
                let next = if tx.request.method == Method::Invite {
                    interval * 2
                } else {
                    (interval * 2).min(t2)
                };
                tx.next_e = Some((now + next, next));
            }
        }
        refresh_failed
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
    /// Boxed: an ended call lingers for 64*T1, and the map's spare
    /// capacity then costs a pointer, not a whole call.
    calls: HashMap<u64, Box<Call>>,
    /// Ended calls with nothing of their own in flight, until their
    /// linger time (see [`ended`]).
    ended: HashMap<u64, Box<Ended>>,
    by_call_id: HashMap<String, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    tx: VecDeque<Transmit>,
    events: VecDeque<(CallId, CallEvent)>,
    stats: EndpointStats,
    live: usize,
    /// Where responses to the message being handled go.
    source: ReplyTo,
}

impl Endpoint {
    /// An endpoint with no calls.
    pub fn new(cfg: EndpointConfig) -> Endpoint {
        Endpoint {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            next_id: 0,
            calls: HashMap::new(),
            ended: HashMap::new(),
            by_call_id: HashMap::new(),
            timers: BinaryHeap::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
            live: 0,
            source: ReplyTo::default(),
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
            source: self.source,
        };
        f(call, now, &mut out);
        if !was_done && call.state == State::Done {
            self.live -= 1;
        }
        if call.state == State::Done {
            call.shed();
            if call.linger_until.is_some_and(|l| l <= now) {
                self.by_call_id.remove(&call.call_id);
                self.calls.remove(&id);
                return;
            }
            if self.settle(id) {
                return;
            }
        }
        if let Some(call) = self.calls.get_mut(&id)
            && let Some(d) = call.deadline()
            && call.scheduled.is_none_or(|s| d < s || s <= now)
        {
            call.scheduled = Some(d);
            self.timers.push(Reverse((d, id)));
        }
    }

    /// Turns an ended call with nothing in flight into its lingering
    /// record ([`Ended`]); true when it did.
    fn settle(&mut self, id: u64) -> bool {
        let Some(call) = self.calls.remove(&id) else {
            return false;
        };
        match Ended::from_call(call) {
            Ok(e) => {
                self.timers.push(Reverse((e.linger_until, id)));
                self.ended.insert(id, Box::new(e));
                true
            }
            Err(call) => {
                self.calls.insert(id, call);
                false
            }
        }
    }

    /// A message for the ended call `id`: answered from its record, or, for
    /// a new answer, by the call brought back whole.
    fn dispatch_ended(&mut self, id: u64, now: Instant, msg: Message) {
        let Some(e) = self.ended.get(&id) else {
            return;
        };
        let mut out = Out {
            cfg: &self.cfg,
            rng: &mut self.rng,
            tx: &mut self.tx,
            events: &mut self.events,
            stats: &mut self.stats,
            source: self.source,
        };
        match msg {
            Message::Request(q) => e.on_request(&q, &mut out),
            Message::Response(r) => {
                if e.on_response(&r, &mut out).is_ok() {
                    return;
                }
                let Some(e) = self.ended.remove(&id) else {
                    return;
                };
                let call = (*e).revive(now, &mut out);
                self.calls.insert(id, Box::new(call));
                self.with_call(id, now, |c, now, out| c.on_response(now, &r, out));
            }
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
            source: self.source,
        };
        let call = Call::new(CallId(id), now, params, &mut out);
        self.by_call_id.insert(call.call_id.clone(), id);
        self.calls.insert(id, Box::new(call));
        self.live += 1;
        self.with_call(id, now, |_, _, _| {});
        CallId(id)
    }

    /// Takes back a leg a crash left (see [`LegRecord`]) to end it: BYE
    /// in its dialog if it was answered, else CANCEL of its INVITE (a 2xx
    /// that comes anyway is ACKed and BYEd). Its events end with
    /// [`CallEvent::Ended`] like any call's.
    pub fn resume_call(
        &mut self,
        now: Instant,
        rec: LegRecord,
        credentials: Option<Credentials>,
    ) -> CallId {
        self.next_id += 1;
        let id = self.next_id;
        let mut out = Out {
            cfg: &self.cfg,
            rng: &mut self.rng,
            tx: &mut self.tx,
            events: &mut self.events,
            stats: &mut self.stats,
            source: self.source,
        };
        let call = Call::resume(CallId(id), now, rec, credentials, &mut out);
        self.by_call_id.insert(call.call_id.clone(), id);
        self.calls.insert(id, Box::new(call));
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
        self.handle_bytes_from(now, None, bytes)
    }

    /// [`Endpoint::handle_bytes`] for bytes from `from`: responses to a
    /// request go back to its sender (`None`: the driver's default peer).
    pub fn handle_bytes_from(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        bytes: &[u8],
    ) -> Result<(), SipError> {
        match message::parse(bytes, false) {
            Ok((m, _)) => {
                self.handle_message_from(now, from, m);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                // A broken request gets its 400 (RFC 3261 8.2), at the
                // address it came from (unknown: the provider, as for any
                // reply); a broken response is dropped.
                if let Some(reply) = message::bad_request(bytes) {
                    ReplyTo {
                        to: from,
                        also: None,
                    }
                    .push(&mut self.tx, reply);
                }
                Err(e)
            }
        }
    }

    /// Feeds a parsed message. Call on every arrival.
    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        self.handle_message_from(now, None, msg);
    }

    /// [`Endpoint::handle_message`] for a message from `from`.
    pub fn handle_message_from(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        mut msg: Message,
    ) {
        // Over UDP a request's responses go where its top Via says (RFC
        // 3261 18.2.2, RFC 3581), which is not always the port it came
        // from, and also to that port (see `ReplyTo`); over TCP and TLS,
        // back on the connection it came on.
        self.source = match (&mut msg, from) {
            (Message::Request(q), Some(source)) if !self.cfg.transport.reliable() => {
                let to = message::stamp_via_received(&mut q.headers, source);
                ReplyTo {
                    to: Some(to),
                    also: (to != source).then_some(source),
                }
            }
            _ => ReplyTo {
                to: from,
                also: None,
            },
        };
        self.dispatch(now, msg);
        self.source = ReplyTo::default();
    }

    fn dispatch(&mut self, now: Instant, msg: Message) {
        // RFC 3261 8.1.3.3: a response with more than one Via was meant for
        // a proxy on its way, not for us.
        if let Message::Response(r) = &msg
            && more_than_one_via(&r.headers)
        {
            self.stats.stray += 1;
            tracing::debug!(code = r.code, "response with more than one Via dropped");
            return;
        }
        let call_id = msg.headers().get("Call-ID").unwrap_or_default();
        let id = self.by_call_id.get(call_id).copied();
        if let Some(id) = id
            && self.ended.contains_key(&id)
        {
            self.dispatch_ended(id, now, msg);
            return;
        }
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
                // No call of ours: RFC 3261 8.2.1-8.2.2 in order (method,
                // then URI scheme, then extensions), then 12.2.2.
                let with_allow = |code, reason| {
                    let mut r = Response::to(&q, code, reason, None);
                    r.headers.push("Allow", ALLOW);
                    r
                };
                let in_dialog = q.headers.get("To").and_then(message::tag_of).is_some();
                let reply = match &q.method {
                    Method::Ack => return,
                    Method::Other(_) => with_allow(501, "Not Implemented"),
                    Method::Register => with_allow(405, "Method Not Allowed"),
                    _ if !known_scheme(&q.uri) => {
                        Response::to(&q, 416, "Unsupported URI Scheme", None)
                    }
                    Method::Options => options_reply(&q),
                    Method::Invite if !in_dialog => {
                        // We place calls; we take none.
                        Response::to(&q, 480, "Temporarily Unavailable", None)
                    }
                    _ => Response::to(&q, 481, "Call/Transaction Does Not Exist", None),
                };
                self.source.push(&mut self.tx, reply.encode());
            }
        }
    }

    /// The transport says the peer refuses (ICMP port unreachable,
    /// connection refused or lost). Calls that heard nothing yet from
    /// their destination try the next one (RFC 3263 4.3) or end as
    /// [`Outcome::Unreachable`]; the others run on their timers.
    pub fn handle_unreachable(&mut self, now: Instant) {
        self.handle_unreachable_at(now, None);
    }

    /// [`Endpoint::handle_unreachable`] for one destination (`None`: any).
    pub fn handle_unreachable_at(&mut self, now: Instant, dest: Option<SocketAddr>) {
        let waiting: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.state == State::Calling
                    && !c.heard
                    && (dest.is_none() || c.dest() == dest || c.dest().is_none())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.with_call(id, now, |c, now, out| {
                if !c.fail_over(now, out) {
                    c.end(now, Outcome::Unreachable, out)
                }
            });
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
                // An ended call's record goes at its linger time.
                if self.ended.get(&id).is_some_and(|e| e.linger_until <= at)
                    && let Some(e) = self.ended.remove(&id)
                {
                    self.by_call_id.remove(e.call_id());
                }
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
        self.tx.pop_front().map(|t| t.bytes)
    }

    /// [`Endpoint::poll_transmit`] with each message's destination.
    #[must_use]
    pub fn poll_transmit_to(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    /// The next call event. Call after every `handle_*` until `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<(CallId, CallEvent)> {
        self.events.pop_front()
    }
}

mod ended;
#[cfg(test)]
mod tests;
