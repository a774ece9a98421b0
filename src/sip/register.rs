//! Registration with a trunk that requires it (RFC 3261 10): REGISTER with
//! digest, refreshed before the granted expiry, retried with back-off after
//! a failure (RFC 5626 4.5: 30 s doubling to 30 min, or the Retry-After a
//! 503 gives), 423 answered with the registrar's Min-Expires, and an
//! unregister (Expires: 0) at shutdown.
//!
//! [`Registration`] is sans-IO like [`super::uac::Endpoint`]: the caller
//! feeds responses and the time and sends what
//! [`Registration::poll_transmit`] gives to the registrar.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use super::auth::{self, Credentials, NonceCounts};
use super::message::{self, Method, Request, Response};
use super::uac::Timers;
use super::{SipError, Transport};

/// What to register.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    /// The registrar's domain URI (Request-URI), e.g. `sip:carrier.example`.
    pub registrar: String,
    /// Our address-of-record (From and To), e.g. `sip:trunk42@carrier.example`.
    pub aor: String,
    /// The user part of our Contact.
    pub user: String,
    /// Our address as the registrar sees it (Via, Contact).
    pub local: SocketAddr,
    /// The transport (Via, Contact's `transport=`).
    pub transport: Transport,
    /// The expiry to ask for, seconds.
    pub expires: u32,
    /// Digest credentials.
    pub credentials: Option<Credentials>,
    /// Timer values.
    pub timers: Timers,
    /// Seed for the Call-ID, tag and branches.
    pub seed: u64,
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RegState {
    /// A REGISTER is on its way.
    Registering,
    /// Registered until `expires_in` from the last change.
    Registered {
        /// Seconds the registrar granted.
        granted: u32,
    },
    /// The last try failed; another comes after a back-off.
    Failed {
        /// The final status code (408 for no answer).
        code: u16,
        /// Failures in a row.
        failures: u32,
    },
    /// Unregistered at our request (or never started).
    Unregistered,
}

/// The shortest back-off after a failure, and the longest.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

struct Pending {
    bytes: Vec<u8>,
    branch: String,
    cseq: u32,
    next_e: Option<(Instant, Duration)>,
    timer_f: Instant,
    /// Challenge rounds answered in this REGISTER's chain.
    auth_tries: u8,
    /// The credentials it carried: (proxy, realm) of each.
    carried: Vec<(bool, String)>,
    expires: u32,
}

/// Challenge rounds one REGISTER may answer (a proxy's and a registrar's,
/// and a stale nonce).
const MAX_AUTH_TRIES: u8 = 3;

/// One registration binding, kept fresh.
pub struct Registration {
    cfg: RegisterConfig,
    rng: StdRng,
    call_id: String,
    tag: String,
    cseq: u32,
    nonce_counts: NonceCounts,
    state: RegState,
    pending: Option<Pending>,
    /// When to send the next REGISTER (refresh or retry).
    next_at: Option<Instant>,
    /// Granted expiry runs out here (a refresh that fails before it keeps
    /// the binding until then).
    valid_until: Option<Instant>,
    failures: u32,
    asked: u32,
    tx: VecDeque<Vec<u8>>,
    /// The challenges answered so far, one per (proxy, realm): every later
    /// REGISTER (refreshes, the unregister) carries credentials for them
    /// with the nonce's next count (RFC 3261 22.3), sparing a round trip.
    challenges: Vec<auth::Challenge>,
    /// Unregistering at shutdown: no refresh or retry follows.
    closing: bool,
    /// How many addresses the registrar's name gave (RFC 3263), and the
    /// one in use: a timeout or 503 moves to the next at once.
    destinations: usize,
    dest: usize,
}

impl Registration {
    /// A registration; the first REGISTER is queued at once.
    pub fn new(now: Instant, cfg: RegisterConfig) -> Registration {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let call_id = format!("{:016x}@dialler", rng.random::<u64>());
        let tag = format!("{:016x}", rng.random::<u64>());
        let asked = cfg.expires.max(1);
        let mut r = Registration {
            cfg,
            rng,
            call_id,
            tag,
            cseq: 0,
            nonce_counts: NonceCounts::default(),
            state: RegState::Registering,
            pending: None,
            next_at: None,
            valid_until: None,
            failures: 0,
            asked,
            tx: VecDeque::new(),
            challenges: Vec::new(),
            closing: false,
            destinations: 1,
            dest: 0,
        };
        r.send(now, asked);
        r
    }

    /// The registrar's name now gives `n` addresses (a fresh DNS answer):
    /// the next REGISTER goes to the first.
    pub fn set_destinations(&mut self, n: usize) {
        self.destinations = n.max(1);
        self.dest = 0;
    }

    /// Which of the addresses (see [`Registration::set_destinations`]) the
    /// next REGISTER goes to.
    pub fn destination(&self) -> usize {
        self.dest
    }

    /// The address in use refused or could not be reached (a transport
    /// error, RFC 3261 8.1.3.1: as a 503): the REGISTER under way moves to
    /// the next address, or fails.
    pub fn handle_unreachable(&mut self, now: Instant) {
        if self.pending.take().is_some() {
            self.fail(now, 503, None);
        }
    }

    /// Where it stands.
    pub fn state(&self) -> RegState {
        self.state
    }

    /// True while a granted binding has not run out.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|u| now < u)
    }

    fn send(&mut self, now: Instant, expires: u32) {
        self.cseq += 1;
        let branch = format!("z9hG4bK{:016x}", self.rng.random::<u64>());
        let mut r = Request::new(Method::Register, self.cfg.registrar.clone());
        let h = &mut r.headers;
        let alias = if self.cfg.transport.reliable() {
            ";alias"
        } else {
            ""
        };
        h.push(
            "Via",
            format!(
                "SIP/2.0/{} {};branch={branch};rport{alias}",
                self.cfg.transport.via_name(),
                self.cfg.local
            ),
        );
        h.push("Max-Forwards", "70");
        h.push("From", format!("<{}>;tag={}", self.cfg.aor, self.tag));
        h.push("To", format!("<{}>", self.cfg.aor));
        h.push("Call-ID", self.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.cseq));
        h.push(
            "Contact",
            self.cfg.transport.contact(&self.cfg.user, self.cfg.local),
        );
        h.push("Expires", expires.to_string());
        h.push("User-Agent", "dialler");
        let mut carried = Vec::new();
        if let Some(creds) = &self.cfg.credentials {
            for ch in &self.challenges {
                let nc = self.nonce_counts.next(&ch.nonce);
                let cnonce = format!("{:016x}", self.rng.random::<u64>());
                let value = ch.authorization(creds, "REGISTER", &self.cfg.registrar, &cnonce, nc);
                r.headers.push(ch.answer_header(), value);
                carried.push((ch.proxy, ch.realm.clone()));
            }
        }
        let bytes = r.encode();
        self.tx.push_back(bytes.clone());
        let t = self.cfg.timers;
        self.pending = Some(Pending {
            bytes,
            branch,
            cseq: self.cseq,
            next_e: (!self.cfg.transport.reliable()).then(|| (now + t.t1, t.t1)),
            timer_f: now + 64 * t.t1,
            auth_tries: 0,
            carried,
            expires,
        });
        self.next_at = None;
        if expires > 0 && !matches!(self.state, RegState::Registered { .. }) {
            self.state = RegState::Registering;
        }
    }

    /// Sends Expires: 0 (at shutdown), with the credentials in use; a
    /// challenge to it is answered like any other. The state says
    /// `Unregistered` once the registrar confirms (or when nothing was
    /// registered); [`Registration::is_closed`] says when it is over.
    pub fn unregister(&mut self, now: Instant) {
        self.closing = true;
        self.next_at = None;
        if self.valid_until.is_none() && !matches!(self.state, RegState::Registered { .. }) {
            // Nothing granted: nothing to take away (a REGISTER still in
            // flight is dropped with its answer).
            self.pending = None;
            self.state = RegState::Unregistered;
            return;
        }
        self.send(now, 0);
    }

    /// After [`Registration::unregister`]: its transaction is over
    /// (confirmed, refused or timed out).
    pub fn is_closed(&self) -> bool {
        self.closing && self.pending.is_none()
    }

    fn fail(&mut self, now: Instant, code: u16, retry_after: Option<Duration>) {
        // No answer, or a 503, from one address of the registrar: the
        // same REGISTER goes to the next at once (RFC 3263 4.3).
        if matches!(code, 408 | 503) && self.dest + 1 < self.destinations {
            self.dest += 1;
            tracing::info!(registrar = %self.cfg.registrar, code, next = self.dest, "REGISTER: trying the registrar's next address");
            let expires = if self.closing { 0 } else { self.asked };
            self.send(now, expires);
            return;
        }
        // Every address failed: after the back-off, from the first again.
        self.dest = 0;
        self.failures += 1;
        self.state = RegState::Failed {
            code,
            failures: self.failures,
        };
        if self.closing {
            tracing::warn!(registrar = %self.cfg.registrar, code, "unregistering failed");
            return;
        }
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << (self.failures - 1).min(10))
            .min(BACKOFF_MAX);
        let wait = retry_after.map_or(backoff, |r| r.clamp(Duration::from_secs(1), BACKOFF_MAX));
        self.next_at = Some(now + wait);
        tracing::warn!(
            registrar = %self.cfg.registrar,
            code,
            failures = self.failures,
            retry_in_s = wait.as_secs(),
            "registration failed"
        );
    }

    /// A response from the registrar. Responses that match no REGISTER of
    /// ours (branch, CSeq) are ignored.
    pub fn handle_response(&mut self, now: Instant, r: &Response) {
        let Ok((n, Method::Register)) = message::cseq(&r.headers) else {
            return;
        };
        let Some(p) = &self.pending else { return };
        if message::top_branch(&r.headers) != Some(p.branch.as_str()) || n != p.cseq {
            return;
        }
        if r.code < 200 {
            // Proceeding (RFC 3261 17.1.2.2): retransmit every T2 from now.
            if let Some(p) = &mut self.pending
                && p.next_e.is_some()
            {
                let t2 = self.cfg.timers.t2;
                p.next_e = Some((now + t2, t2));
            }
            return;
        }
        let Some(p) = self.pending.take() else { return };
        let code = r.code;
        if code == 401 || code == 407 {
            // Every challenge the response carries, of both kinds (a
            // proxy's and the registrar's, RFC 3261 22.3): the topmost of
            // each we can answer.
            let new: Vec<auth::Challenge> =
                [("WWW-Authenticate", false), ("Proxy-Authenticate", true)]
                    .into_iter()
                    .filter_map(|(h, proxy)| {
                        auth::first_answerable(r.headers.get_all(h), proxy)?.ok()
                    })
                    .collect();
            // Credentials this REGISTER carried challenged again without
            // `stale` were refused; the first REGISTER of a chain may have
            // carried an old nonce (a refresh), so it is answered once.
            let refused = p.auth_tries > 0
                && new
                    .iter()
                    .any(|ch| !ch.stale && p.carried.contains(&(ch.proxy, ch.realm.clone())));
            if self.cfg.credentials.is_none()
                || new.is_empty()
                || refused
                || p.auth_tries >= MAX_AUTH_TRIES
            {
                self.challenges.clear();
                return self.fail(now, code, None);
            }
            for ch in new {
                self.challenges
                    .retain(|c| !(c.proxy == ch.proxy && c.realm == ch.realm));
                self.challenges.push(ch);
            }
            self.send(now, p.expires);
            if let Some(np) = &mut self.pending {
                np.auth_tries = p.auth_tries + 1;
            }
            return;
        }
        if code == 423 {
            let min = r
                .headers
                .get("Min-Expires")
                .and_then(|v| v.trim().parse::<u32>().ok());
            match min {
                Some(m) if m > p.expires && m <= 86_400 => {
                    self.asked = m;
                    self.send(now, m);
                }
                _ => self.fail(now, code, None),
            }
            return;
        }
        if (200..300).contains(&code) {
            if p.expires == 0 {
                self.state = RegState::Unregistered;
                self.valid_until = None;
                return;
            }
            let granted = self.granted(r).unwrap_or(p.expires).min(p.expires.max(1));
            if granted == 0 {
                // The registrar removed our binding: try again later.
                return self.fail(now, code, None);
            }
            self.failures = 0;
            self.state = RegState::Registered { granted };
            let g = Duration::from_secs(u64::from(granted));
            self.valid_until = Some(now + g);
            // Refresh a minute early, or half way through a short expiry.
            let refresh = (g / 2).max(g.saturating_sub(Duration::from_secs(60)));
            self.next_at = Some(now + refresh);
            tracing::info!(registrar = %self.cfg.registrar, granted, "registered");
            return;
        }
        let retry_after = r
            .headers
            .get("Retry-After")
            .and_then(|v| v.split([';', ' ', '(']).next()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        self.fail(now, code, retry_after);
    }

    /// The expiry the registrar granted our Contact: its `expires`
    /// parameter, else the Expires header.
    fn granted(&self, r: &Response) -> Option<u32> {
        let ours = self.cfg.local.to_string();
        // Ours by its host and port exactly: another device's binding
        // (`110.0.0.1:5070`, `...:50700`) is not.
        let host_port = |uri: &str| -> Option<String> {
            let rest = uri.split_once('@').map_or(uri, |(_, r)| r);
            let rest = rest.split_once(':').map_or(rest, |(s, r)| {
                if s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips") {
                    r
                } else {
                    rest
                }
            });
            Some(rest.split([';', '?', '>']).next()?.to_ascii_lowercase())
        };
        message::list_entries(&r.headers, "Contact")
            .into_iter()
            .find(|c| host_port(message::uri_of(c)).is_some_and(|h| h == ours))
            .and_then(|c| message::param(c, "expires"))
            .and_then(|v| v.parse().ok())
            .or_else(|| r.headers.get("Expires").and_then(|v| v.trim().parse().ok()))
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.cfg.timers.t2;
        if let Some(p) = &mut self.pending {
            if p.timer_f <= now {
                self.pending = None;
                if self.state != RegState::Unregistered {
                    self.fail(now, 408, None);
                }
                return;
            }
            if let Some((at, interval)) = p.next_e
                && at <= now
            {
                self.tx.push_back(p.bytes.clone());
                let next = (interval * 2).min(t2);
                p.next_e = Some((now + next, next));
            }
            return;
        }
        if self.next_at.is_some_and(|t| t <= now) && !self.closing {
            let asked = self.asked;
            self.send(now, asked);
        }
    }

    /// When [`Registration::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.pending {
            Some(p) => Some(match p.next_e {
                Some((e, _)) => e.min(p.timer_f),
                None => p.timer_f,
            }),
            None => self.next_at,
        }
    }

    /// The next REGISTER to send to the registrar.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }
}

/// The registration settings for a provider URI: registrar `sip[s]:HOST`,
/// AOR `sip[s]:USER@HOST`.
pub fn for_provider(
    uri: &super::resolve::SipUri,
    user: &str,
    local: SocketAddr,
    transport: Transport,
    expires: u32,
    credentials: Option<Credentials>,
) -> Result<RegisterConfig, SipError> {
    if user.is_empty() {
        return Err(SipError::BadUri(
            uri.uri.clone(),
            "registration needs a user",
        ));
    }
    let scheme = if uri.secure { "sips" } else { "sip" };
    let host = if uri.host.contains(':') {
        format!("[{}]", uri.host)
    } else {
        uri.host.clone()
    };
    Ok(RegisterConfig {
        registrar: format!("{scheme}:{host}"),
        aor: format!("{scheme}:{user}@{host}"),
        user: user.to_string(),
        local,
        transport,
        expires,
        credentials,
        timers: Timers::default(),
        seed: rand::random(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    const S: Duration = Duration::from_secs(1);

    fn reg(creds: bool) -> (Registration, Instant) {
        let now = Instant::now();
        let r = Registration::new(
            now,
            RegisterConfig {
                registrar: "sip:carrier.example".into(),
                aor: "sip:trunk42@carrier.example".into(),
                user: "trunk42".into(),
                local: "127.0.0.1:5070".parse().unwrap(),
                transport: Transport::Udp,
                expires: 600,
                credentials: creds.then(|| Credentials {
                    username: "trunk42".into(),
                    password: "pw".into(),
                }),
                timers: Timers::default(),
                seed: 3,
            },
        );
        (r, now)
    }

    fn sent(r: &mut Registration) -> Request {
        let bytes = r.poll_transmit().expect("a REGISTER");
        match message::parse(&bytes, false).unwrap().0 {
            Message::Request(q) => q,
            Message::Response(_) => panic!("a request"),
        }
    }

    #[test]
    fn a_challenge_is_answered_and_the_binding_refreshed_before_it_runs_out() {
        let (mut r, t0) = reg(true);
        let q = sent(&mut r);
        assert_eq!(q.method, Method::Register);
        assert_eq!(q.uri, "sip:carrier.example");
        assert_eq!(q.headers.get("Expires"), Some("600"));
        let mut ch = Response::to(&q, 401, "Unauthorized", Some("r"));
        ch.headers
            .push("WWW-Authenticate", "Digest realm=\"carrier\", nonce=\"n\"");
        r.handle_response(t0, &ch);
        let q2 = sent(&mut r);
        assert!(
            q2.headers
                .get("Authorization")
                .unwrap()
                .contains("uri=\"sip:carrier.example\"")
        );
        assert_eq!(message::cseq(&q2.headers).unwrap().0, 2);
        assert_eq!(q2.headers.get("Call-ID"), q.headers.get("Call-ID"));
        let mut ok = Response::to(&q2, 200, "OK", Some("r"));
        ok.headers
            .push("Contact", "<sip:trunk42@127.0.0.1:5070>;expires=300");
        r.handle_response(t0 + S, &ok);
        assert_eq!(r.state(), RegState::Registered { granted: 300 });
        assert!(r.is_registered(t0 + 200 * S));
        // Refresh a minute before the granted 300 s run out.
        assert_eq!(r.poll_timeout(), Some(t0 + S + 240 * S));
        r.handle_timeout(t0 + 241 * S);
        let q3 = sent(&mut r);
        assert_eq!(message::cseq(&q3.headers).unwrap().0, 3);
    }

    /// RFC 7616 3.3: a second 401 with `stale=true` is answered once more
    /// with its new nonce (nonce count from 1); a second 401 without it
    /// means the credentials are refused.
    #[test]
    fn a_stale_nonce_is_answered_again_and_refused_credentials_are_not() {
        let (mut r, t0) = reg(true);
        let q = sent(&mut r);
        let mut ch = Response::to(&q, 401, "Unauthorized", Some("r"));
        ch.headers.push(
            "WWW-Authenticate",
            "Digest realm=\"carrier\", nonce=\"old\", qop=\"auth\"",
        );
        r.handle_response(t0, &ch);
        let q2 = sent(&mut r);
        let mut stale = Response::to(&q2, 401, "Unauthorized", Some("r"));
        stale.headers.push(
            "WWW-Authenticate",
            "Digest realm=\"carrier\", nonce=\"new\", qop=\"auth\", stale=TRUE",
        );
        r.handle_response(t0, &stale);
        let q3 = sent(&mut r);
        let auth = q3.headers.get("Authorization").unwrap();
        assert!(
            auth.contains("nonce=\"new\"") && auth.contains("nc=00000001"),
            "{auth}"
        );
        let mut refused = Response::to(&q3, 401, "Unauthorized", Some("r"));
        refused.headers.push(
            "WWW-Authenticate",
            "Digest realm=\"carrier\", nonce=\"newer\", qop=\"auth\"",
        );
        r.handle_response(t0, &refused);
        assert!(
            matches!(r.state(), RegState::Failed { code: 401, .. }),
            "{:?}",
            r.state()
        );
    }

    fn challenge(q: &Request, code: u16, header: &str, value: &str) -> Response {
        let mut ch = Response::to(q, code, "Unauthorized", Some("r"));
        ch.headers.push(header, value);
        ch
    }

    fn ok(q: &Request, contact: &str) -> Response {
        let mut ok = Response::to(q, 200, "OK", Some("r"));
        ok.headers.push("Contact", contact);
        ok
    }

    /// RFC 3261 22.3: the credentials answered once go on every later
    /// REGISTER (the refresh with the same nonce counts on: nc 2); a
    /// proxy's 407 then the registrar's 401 are both answered, and a
    /// response with both kinds of challenge gets both answers at once.
    #[test]
    fn credentials_are_reused_on_refreshes_and_a_proxys_and_a_registrars_both_answered() {
        let (mut r, t0) = reg(true);
        let q = sent(&mut r);
        r.handle_response(
            t0,
            &challenge(
                &q,
                407,
                "Proxy-Authenticate",
                "Digest realm=\"edge\", nonce=\"p\", qop=\"auth\"",
            ),
        );
        let q2 = sent(&mut r);
        assert!(q2.headers.get("Proxy-Authorization").is_some());
        r.handle_response(
            t0,
            &challenge(
                &q2,
                401,
                "WWW-Authenticate",
                "Digest realm=\"carrier\", nonce=\"w\", qop=\"auth\"",
            ),
        );
        let q3 = sent(&mut r);
        let proxy = q3
            .headers
            .get("Proxy-Authorization")
            .expect("still the proxy's");
        let www = q3
            .headers
            .get("Authorization")
            .expect("and the registrar's");
        assert!(
            proxy.contains("realm=\"edge\"") && proxy.contains("nc=00000002"),
            "{proxy}"
        );
        assert!(
            www.contains("realm=\"carrier\"") && www.contains("nc=00000001"),
            "{www}"
        );
        r.handle_response(t0, &ok(&q3, "<sip:trunk42@127.0.0.1:5070>;expires=300"));
        assert_eq!(r.state(), RegState::Registered { granted: 300 });
        r.handle_timeout(t0 + 241 * S);
        let refresh = sent(&mut r);
        let www = refresh
            .headers
            .get("Authorization")
            .expect("credentials on the refresh");
        assert!(
            www.contains("nonce=\"w\"") && www.contains("nc=00000002"),
            "{www}"
        );
        // Both kinds in one response (a forking proxy's merged 407).
        let (mut r, t0) = reg(true);
        let q = sent(&mut r);
        let mut both = challenge(
            &q,
            407,
            "Proxy-Authenticate",
            "Digest realm=\"edge\", nonce=\"p\"",
        );
        both.headers
            .push("WWW-Authenticate", "Digest realm=\"carrier\", nonce=\"w\"");
        r.handle_response(t0, &both);
        let q2 = sent(&mut r);
        assert!(q2.headers.get("Proxy-Authorization").is_some());
        assert!(q2.headers.get("Authorization").is_some());
    }

    /// RFC 3261 17.1.2.2: after a provisional response the REGISTER is
    /// resent every T2, not on the doubling timer.
    #[test]
    fn a_provisional_response_moves_retransmissions_to_t2() {
        let (mut r, t0) = reg(false);
        let q = sent(&mut r);
        r.handle_response(t0, &Response::to(&q, 100, "Trying", None));
        assert_eq!(r.poll_timeout(), Some(t0 + 4 * S));
        r.handle_timeout(t0 + 4 * S);
        let again = sent(&mut r);
        assert_eq!(again.headers.get("CSeq"), q.headers.get("CSeq"));
        assert_eq!(r.poll_timeout(), Some(t0 + 8 * S));
    }

    /// RFC 3261 10.2.2: the unregister is answered like any REGISTER (a
    /// challenge with the credentials) and the state says unregistered
    /// only when the registrar confirms.
    #[test]
    fn the_unregister_answers_its_challenge_and_waits_for_the_200() {
        let (mut r, t0) = reg(true);
        let q = sent(&mut r);
        r.handle_response(t0, &ok(&q, "<sip:trunk42@127.0.0.1:5070>;expires=600"));
        assert!(r.is_registered(t0));
        r.unregister(t0 + S);
        let u = sent(&mut r);
        assert_eq!(u.headers.get("Expires"), Some("0"));
        assert!(!r.is_closed());
        assert_ne!(r.state(), RegState::Unregistered);
        r.handle_response(
            t0 + S,
            &challenge(
                &u,
                401,
                "WWW-Authenticate",
                "Digest realm=\"carrier\", nonce=\"u\"",
            ),
        );
        let u2 = sent(&mut r);
        assert_eq!(u2.headers.get("Expires"), Some("0"));
        assert!(u2.headers.get("Authorization").is_some());
        r.handle_response(t0 + S, &Response::to(&u2, 200, "OK", Some("r")));
        assert_eq!(r.state(), RegState::Unregistered);
        assert!(r.is_closed());
        // No refresh after it.
        assert_eq!(r.poll_timeout(), None);
    }

    /// RFC 3263 4.3: a 503 or no answer from one address of the registrar
    /// sends the REGISTER to the next at once; when every address failed,
    /// the back-off, then the first again.
    #[test]
    fn a_503_or_silence_moves_the_register_to_the_registrars_next_address() {
        let (mut r, t0) = reg(false);
        r.set_destinations(3);
        let q = sent(&mut r);
        assert_eq!(r.destination(), 0);
        r.handle_response(t0, &Response::to(&q, 503, "Service Unavailable", Some("r")));
        assert_eq!(r.destination(), 1);
        assert_eq!(r.state(), RegState::Registering);
        let q2 = sent(&mut r);
        assert_ne!(top_branch(&q2), top_branch(&q));
        // Silence from the second: Timer F, then the third.
        let mut t = t0;
        while r.destination() == 1 {
            t = r.poll_timeout().expect("a timer");
            r.handle_timeout(t);
        }
        assert_eq!(r.destination(), 2);
        assert!(t >= t0 + 32 * S);
        let q3 = loop {
            let q = sent(&mut r);
            if q.headers.get("CSeq") != q2.headers.get("CSeq") {
                break q;
            }
        };
        r.handle_response(t, &Response::to(&q3, 503, "Service Unavailable", Some("r")));
        assert!(matches!(
            r.state(),
            RegState::Failed {
                code: 503,
                failures: 1
            }
        ));
        assert_eq!(r.destination(), 0, "after the back-off, the first again");
        // A transport error counts as a 503.
        r.handle_timeout(t + 30 * S);
        let _ = sent(&mut r);
        r.handle_unreachable(t + 30 * S);
        assert_eq!(r.destination(), 1);
    }

    fn top_branch(q: &Request) -> Option<String> {
        message::top_branch(&q.headers).map(str::to_string)
    }

    /// The granted expiry is our Contact's: another device's binding whose
    /// address merely contains ours is not taken for it.
    #[test]
    fn the_granted_expiry_is_read_from_our_contact_only() {
        let (mut r, t0) = reg(false);
        let q = sent(&mut r);
        let mut resp = ok(&q, "<sip:other@127.0.0.1:50700>;expires=30");
        resp.headers
            .push("Contact", "<sip:x@10.127.0.0.1:5070>;expires=40");
        resp.headers
            .push("Contact", "<sip:trunk42@127.0.0.1:5070>;expires=500");
        r.handle_response(t0, &resp);
        assert_eq!(r.state(), RegState::Registered { granted: 500 });
    }

    #[test]
    fn failures_back_off_and_423_takes_min_expires() {
        let (mut r, t0) = reg(false);
        let q = sent(&mut r);
        let mut brief = Response::to(&q, 423, "Interval Too Brief", Some("r"));
        brief.headers.push("Min-Expires", "1800");
        r.handle_response(t0, &brief);
        let q2 = sent(&mut r);
        assert_eq!(q2.headers.get("Expires"), Some("1800"));
        r.handle_response(t0, &Response::to(&q2, 403, "Forbidden", Some("r")));
        assert_eq!(
            r.state(),
            RegState::Failed {
                code: 403,
                failures: 1
            }
        );
        assert_eq!(r.poll_timeout(), Some(t0 + 30 * S));
        r.handle_timeout(t0 + 30 * S);
        let q3 = sent(&mut r);
        r.handle_response(t0 + 30 * S, &Response::to(&q3, 500, "Error", Some("r")));
        assert_eq!(
            r.poll_timeout(),
            Some(t0 + 90 * S),
            "60 s after the second failure"
        );
        // No answer at all: timer F, then a failure (408).
        r.handle_timeout(t0 + 90 * S);
        let _ = sent(&mut r);
        let mut t = t0 + 90 * S;
        while let Some(next) = r.poll_timeout() {
            if matches!(r.state(), RegState::Failed { failures: 3, .. }) {
                break;
            }
            t = next;
            r.handle_timeout(t);
        }
        assert_eq!(
            r.state(),
            RegState::Failed {
                code: 408,
                failures: 3
            }
        );
        // A stray response (other branch) changes nothing.
        let mut stray = Response::to(&q3, 200, "OK", Some("r"));
        stray
            .headers
            .set("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKother");
        r.handle_response(t, &stray);
        assert_eq!(
            r.state(),
            RegState::Failed {
                code: 408,
                failures: 3
            }
        );
    }
}
