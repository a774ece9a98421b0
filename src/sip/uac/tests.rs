//! State-machine tests of the UAC with virtual time and a scripted peer.

use super::*;
use crate::sip::message::{self, Message, Method, Request, Response, tag_of, top_branch};

const SECOND: Duration = Duration::from_secs(1);

fn endpoint(transport: Transport) -> Endpoint {
    Endpoint::new(EndpointConfig {
        local: "127.0.0.1:5070".parse().unwrap(),
        transport,
        timers: Timers::default(),
        seed: 7,
    })
}

fn params() -> CallParams {
    CallParams {
        ids: None,
        target: "sip:+15551230000@127.0.0.1:5060".into(),
        from_user: "dialler".into(),
        ring_timeout: RingTimeout::new(Duration::from_secs(15)).unwrap(),
        credentials: None,
        media_addr: "127.0.0.1:40000".parse().unwrap(),
        max_talk: None,
        display_name: None,
        extra_headers: Vec::new(),
        destinations: Vec::new(),
    }
}

fn sent(ep: &mut Endpoint) -> Vec<Message> {
    std::iter::from_fn(|| ep.poll_transmit())
        .map(|b| message::parse(&b, false).expect("we send valid SIP").0)
        .collect()
}

fn events(ep: &mut Endpoint) -> Vec<CallEvent> {
    std::iter::from_fn(|| ep.poll_event())
        .map(|(_, e)| e)
        .collect()
}

fn request(m: &Message) -> &Request {
    match m {
        Message::Request(r) => r,
        Message::Response(r) => panic!("expected a request, got {}", r.code),
    }
}

fn response(m: &Message) -> &Response {
    match m {
        Message::Response(r) => r,
        Message::Request(r) => panic!("expected a response, got {}", r.method),
    }
}

/// Starts a call and returns the INVITE it sent.
fn start(ep: &mut Endpoint, now: Instant, p: CallParams) -> (CallId, Request) {
    let id = ep.start_call(now, p);
    let out = sent(ep);
    assert_eq!(out.len(), 1);
    (id, request(&out[0]).clone())
}

fn reply(ep: &mut Endpoint, now: Instant, invite: &Request, code: u16) {
    let mut r = Response::to(invite, code, "X", (code > 100).then_some("peer"));
    if (200..300).contains(&code) {
        r.headers.push("Contact", "<sip:callee@127.0.0.1:5060>");
        r.headers.push("Content-Type", "application/sdp");
        r.body = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 8\r\n".to_vec();
    }
    ep.handle_bytes(now, &r.encode()).unwrap();
}

/// Advances virtual time to `until`, stepping through every deadline.
fn run_until(ep: &mut Endpoint, until: Instant) -> Vec<(Instant, Message)> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_timeout() {
        if t > until {
            break;
        }
        ep.handle_timeout(t);
        out.extend(sent(ep).into_iter().map(|m| (t, m)));
    }
    out
}

fn ended(evs: &[CallEvent]) -> Option<&Summary> {
    evs.iter().find_map(|e| match e {
        CallEvent::Ended(s) => Some(s),
        _ => None,
    })
}

#[test]
fn invite_carries_the_mandatory_headers_and_an_sdp_offer() {
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, Instant::now(), params());
    assert_eq!(inv.method, Method::Invite);
    assert!(top_branch(&inv.headers).unwrap().starts_with("z9hG4bK"));
    assert_eq!(inv.headers.get("Max-Forwards"), Some("70"));
    assert!(tag_of(inv.headers.get("From").unwrap()).is_some());
    assert!(tag_of(inv.headers.get("To").unwrap()).is_none());
    assert_eq!(message::cseq(&inv.headers).unwrap(), (1, Method::Invite));
    assert!(
        inv.headers
            .get("Contact")
            .unwrap()
            .contains("127.0.0.1:5070")
    );
    let media = sdp::parse(&inv.body).unwrap();
    assert_eq!(media.payloads, vec![0, 8, 101]);
}

#[test]
fn call_ids_tags_and_branches_differ_between_calls() {
    let mut ep = endpoint(Transport::Udp);
    let now = Instant::now();
    let (_, a) = start(&mut ep, now, params());
    let (_, b) = start(&mut ep, now, params());
    for h in ["Call-ID", "From", "Via"] {
        assert_ne!(a.headers.get(h), b.headers.get(h), "{h}");
    }
}

#[test]
fn answered_call_acks_the_200_and_ends_on_remote_bye() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (id, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 100);
    reply(&mut ep, t0 + SECOND, &inv, 180);
    assert_eq!(
        events(&mut ep),
        vec![CallEvent::Progress {
            code: 180,
            early_media: false,
            rings: true,
        }]
    );
    reply(&mut ep, t0 + 3 * SECOND, &inv, 200);
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1);
    let ack = request(&out[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.uri, "sip:callee@127.0.0.1:5060",
        "ACK goes to the Contact"
    );
    assert_eq!(tag_of(ack.headers.get("To").unwrap()), Some("peer"));
    assert_eq!(message::cseq(&ack.headers).unwrap(), (1, Method::Ack));
    assert_ne!(
        top_branch(&ack.headers),
        top_branch(&inv.headers),
        "2xx ACK is a new transaction"
    );
    let evs = events(&mut ep);
    assert!(
        matches!(&evs[..], [CallEvent::Answered { media: Some(m), .. }] if m.addr.port() == 6000)
    );

    // A retransmitted 200 gets the same ACK again and no second event.
    reply(&mut ep, t0 + 4 * SECOND, &inv, 200);
    let again = sent(&mut ep);
    assert_eq!(again, out);
    assert!(events(&mut ep).is_empty());

    // The callee hangs up.
    let mut bye = Request::new(Method::Bye, "sip:dialler@127.0.0.1:5070");
    bye.headers
        .push("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye");
    bye.headers.push("From", "<sip:callee@127.0.0.1>;tag=peer");
    bye.headers.push("To", inv.headers.get("From").unwrap());
    bye.headers
        .push("Call-ID", inv.headers.get("Call-ID").unwrap());
    bye.headers.push("CSeq", "1 BYE");
    ep.handle_bytes(t0 + 10 * SECOND, &bye.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(response(&out[0]).code, 200);
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.hangup, Some(Side::Remote));
    assert_eq!(s.codes, vec![100, 180, 200]);
    assert_eq!(s.answer_after, Some(3 * SECOND));
    assert_eq!(s.progress_after, Some(SECOND));
    assert_eq!(s.talk, Some(7 * SECOND));
    assert_eq!(ep.live_calls(), 0);
    let _ = id;

    // The BYE retransmitted: the same 200 again, no second end.
    ep.handle_bytes(t0 + 11 * SECOND, &bye.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    assert!(events(&mut ep).is_empty());
}

#[test]
fn final_responses_map_to_outcomes_and_are_acked_in_the_invite_transaction() {
    let cases = [
        (486, Outcome::Busy),
        (600, Outcome::Busy),
        (603, Outcome::Rejected),
        (403, Outcome::Rejected),
        (480, Outcome::Unavailable),
        (503, Outcome::Unavailable),
        (404, Outcome::NotFound),
        (484, Outcome::NotFound),
        (302, Outcome::Failure),
        (500, Outcome::Failure),
        (401, Outcome::Failure),
    ];
    for (code, want) in cases {
        let mut ep = endpoint(Transport::Udp);
        let t0 = Instant::now();
        let (_, inv) = start(&mut ep, t0, params());
        reply(&mut ep, t0, &inv, 180);
        reply(&mut ep, t0 + SECOND, &inv, code);
        let out = sent(&mut ep);
        assert_eq!(out.len(), 1, "{code}");
        let ack = request(&out[0]);
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(top_branch(&ack.headers), top_branch(&inv.headers), "{code}");
        assert_eq!(tag_of(ack.headers.get("To").unwrap()), Some("peer"));
        let evs = events(&mut ep);
        let s = ended(&evs).unwrap();
        assert_eq!(s.outcome, want, "{code}");
        assert_eq!(s.final_code, Some(code));
        // A retransmission of the final response is ACKed again in the
        // INVITE's transaction (the ended call kept its Via), no new end.
        reply(&mut ep, t0 + 2 * SECOND, &inv, code);
        let again = sent(&mut ep);
        assert_eq!(again.len(), 1);
        assert_eq!(request(&again[0]), ack, "{code}");
        assert!(events(&mut ep).is_empty());
    }
}

#[test]
fn unanswered_invite_is_retransmitted_on_timer_a_and_times_out_on_timer_b() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let out = run_until(&mut ep, t0 + 40 * SECOND);
    let resent: Vec<Duration> = out
        .iter()
        .filter(|(_, m)| request(m).method == Method::Invite)
        .map(|(t, _)| *t - t0)
        .collect();
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(
        resent,
        vec![ms(500), ms(1500), ms(3500), ms(7500), ms(15500), ms(31500)]
    );
    assert!(
        out.iter()
            .all(|(_, m)| request(m).headers.get("Call-ID") == inv.headers.get("Call-ID"))
    );
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::Timeout);
    assert!(s.codes.is_empty());
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_via_says_tcp() {
    let mut ep = endpoint(Transport::Tcp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    assert!(inv.headers.get("Via").unwrap().starts_with("SIP/2.0/TCP"));
    assert!(
        inv.headers
            .get("Contact")
            .unwrap()
            .contains("transport=tcp")
    );
    let out = run_until(&mut ep, t0 + 40 * SECOND);
    assert!(out.is_empty());
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Timeout);
}

#[test]
fn ring_timeout_sends_cancel_and_the_487_ends_the_call_as_no_answer() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 180);
    let _ = events(&mut ep);
    let out = run_until(&mut ep, t0 + 15 * SECOND);
    assert_eq!(out.len(), 1);
    let (at, cancel) = &out[0];
    assert_eq!(*at - t0, 15 * SECOND, "never before the ring timeout");
    let cancel = request(cancel);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(top_branch(&cancel.headers), top_branch(&inv.headers));
    assert_eq!(message::cseq(&cancel.headers).unwrap(), (1, Method::Cancel));
    assert!(tag_of(cancel.headers.get("To").unwrap()).is_none());
    // 200 to the CANCEL, then 487 to the INVITE.
    ep.handle_bytes(
        t0 + 15 * SECOND,
        &Response::to(cancel, 200, "OK", Some("peer")).encode(),
    )
    .unwrap();
    reply(&mut ep, t0 + 15 * SECOND, &inv, 487);
    let out = sent(&mut ep);
    assert_eq!(request(&out[0]).method, Method::Ack);
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::NoAnswer);
    assert!(!s.crossed_cancel);
    assert_eq!(s.codes, vec![180, 487]);
}

/// The phone rings from the first 180/183, not from the INVITE: after
/// 5 s of set-up it still rings the whole 15 s (TSR 310.4(b)(4)(i)); a
/// 181 (forwarded) before it does not start the count, and a later 180
/// does not start it again. After a redirect the new target's first 180
/// starts it again, and says so.
#[test]
fn the_ring_timeout_counts_from_the_first_180_or_183() {
    let cancels_after = |ep: &mut Endpoint, t0: Instant| -> Option<Duration> {
        run_until(ep, t0 + 60 * SECOND)
            .iter()
            .find(|(_, m)| matches!(m, Message::Request(r) if r.method == Method::Cancel))
            .map(|(at, _)| *at - t0)
    };
    let rings = |ep: &mut Endpoint| -> Vec<(u16, bool)> {
        events(ep)
            .into_iter()
            .filter_map(|e| match e {
                CallEvent::Progress { code, rings, .. } => Some((code, rings)),
                _ => None,
            })
            .collect()
    };
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0 + SECOND, &inv, 100);
    reply(&mut ep, t0 + 2 * SECOND, &inv, 181);
    reply(&mut ep, t0 + 5 * SECOND, &inv, 183);
    reply(&mut ep, t0 + 9 * SECOND, &inv, 180);
    assert_eq!(rings(&mut ep), [(181, false), (183, true), (180, false)]);
    assert_eq!(
        cancels_after(&mut ep, t0),
        Some(20 * SECOND),
        "15 s from the 183 at 5 s"
    );

    // Ringing at the first target, then redirected: the new target's
    // phone rings its own 15 s from its 180.
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0 + SECOND, &inv, 180);
    let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
    r.headers
        .push("Contact", "<sip:+15551230000@10.0.0.1:5060>");
    ep.handle_bytes(t0 + 10 * SECOND, &r.encode()).unwrap();
    let out = sent(&mut ep);
    let moved = request(&out[1]).clone();
    assert_eq!(moved.method, Method::Invite);
    reply(&mut ep, t0 + 12 * SECOND, &moved, 180);
    assert_eq!(rings(&mut ep), [(180, true), (180, true)]);
    assert_eq!(cancels_after(&mut ep, t0), Some(27 * SECOND));
}

#[test]
fn a_200_crossing_the_cancel_gets_ack_then_bye() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 180);
    let _ = run_until(&mut ep, t0 + 15 * SECOND);
    reply(&mut ep, t0 + 15 * SECOND, &inv, 200);
    let out = sent(&mut ep);
    let methods: Vec<Method> = out.iter().map(|m| request(m).method.clone()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    let bye = request(&out[1]);
    assert_eq!(message::cseq(&bye.headers).unwrap(), (2, Method::Bye));
    assert_eq!(tag_of(bye.headers.get("To").unwrap()), Some("peer"));
    assert!(
        events(&mut ep)
            .iter()
            .all(|e| !matches!(e, CallEvent::Answered { .. }))
    );
    ep.handle_bytes(
        t0 + 16 * SECOND,
        &Response::to(bye, 200, "OK", None).encode(),
    )
    .unwrap();
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::NoAnswer);
    assert!(s.crossed_cancel);
}

#[test]
fn no_final_response_after_cancel_ends_as_no_answer_after_64_t1() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 180);
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    let cancels = out
        .iter()
        .filter(|(_, m)| request(m).method == Method::Cancel)
        .count();
    assert!(cancels > 1, "CANCEL is retransmitted on timer E");
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::NoAnswer);
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let out = run_until(&mut ep, t0 + 16 * SECOND);
    assert!(out.iter().all(|(_, m)| request(m).method == Method::Invite));
    reply(&mut ep, t0 + 16 * SECOND, &inv, 180);
    let out = sent(&mut ep);
    assert_eq!(request(&out[0]).method, Method::Cancel);
}

#[test]
fn ring_timeout_under_15_seconds_is_refused() {
    assert!(RingTimeout::new(Duration::from_secs(14)).is_err());
    assert!(RingTimeout::new(Duration::from_secs(15)).is_ok());
}

/// A call with credentials whose INVITE got `code` with the challenge
/// `value` in `header`: the endpoint, start, the challenge, and what went
/// out (its ACK and the INVITE again).
/// [`params`] with the credentials `user` / `secret`.
fn params_with_credentials() -> CallParams {
    let mut p = params();
    p.credentials = Some(Credentials {
        username: "user".into(),
        password: "secret".into(),
    });
    p
}

fn challenged(code: u16, header: &str, value: &str) -> (Endpoint, Instant, Response, Vec<Message>) {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let p = params_with_credentials();
    let (_, inv) = start(&mut ep, t0, p);
    let mut challenge = Response::to(&inv, code, "Challenge", Some("px"));
    challenge.headers.push(header, value);
    ep.handle_bytes(t0, &challenge.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 2);
    (ep, t0, challenge, out)
}

fn challenged_call(second: u16) -> (Vec<Message>, Option<Summary>) {
    let (mut ep, t0, _, out) = challenged(
        401,
        "WWW-Authenticate",
        "Digest realm=\"sipp\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256",
    );
    let second_invite = request(&out[1]).clone();
    reply(&mut ep, t0 + SECOND, &second_invite, second);
    let _ = sent(&mut ep);
    (out, ended(&events(&mut ep)).cloned())
}

#[test]
fn a_401_is_acked_and_answered_with_a_new_invite_carrying_authorization() {
    let (out, end) = challenged_call(200);
    let ack = request(&out[0]);
    assert_eq!(ack.method, Method::Ack);
    let inv2 = request(&out[1]);
    assert_eq!(message::cseq(&inv2.headers).unwrap(), (2, Method::Invite));
    assert_ne!(top_branch(&inv2.headers), top_branch(&ack.headers));
    let auth = inv2.headers.get("Authorization").unwrap();
    assert!(auth.contains("username=\"user\"") && auth.contains("algorithm=SHA-256"));
    assert!(auth.contains("qop=auth, nc=00000001"));
    assert!(end.is_none(), "the call goes on after the retry");
}

#[test]
fn a_second_401_fails_the_call() {
    let (_, end) = challenged_call(401);
    let s = end.unwrap();
    assert_eq!(s.outcome, Outcome::Failure);
    assert_eq!(s.codes, vec![401]);
}

#[test]
fn stray_responses_and_unknown_requests_get_defined_answers() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let mut stray = Response::to(&inv, 200, "OK", Some("x"));
    stray.headers.set("Call-ID", "unknown@elsewhere");
    ep.handle_bytes(t0, &stray.encode()).unwrap();
    assert!(sent(&mut ep).is_empty());
    assert_eq!(ep.stats().stray, 1);
    let mut bye = inv.clone();
    bye.method = Method::Bye;
    bye.headers.set("Call-ID", "unknown@elsewhere");
    bye.headers.set("CSeq", "5 BYE");
    ep.handle_bytes(t0, &bye.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 481);
    assert!(ep.handle_bytes(t0, b"garbage\r\n\r\n").is_err());
    assert_eq!(ep.stats().malformed, 1);
    assert_eq!(ep.live_calls(), 1, "the call goes on");
}

#[test]
fn local_bye_is_retransmitted_and_ends_on_timer_f_without_answer() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    p.max_talk = Some(5 * SECOND);
    let (_, inv) = start(&mut ep, t0, p);
    reply(&mut ep, t0, &inv, 200);
    let _ = sent(&mut ep);
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    let byes: Vec<Duration> = out
        .iter()
        .filter(|(_, m)| request(m).method == Method::Bye)
        .map(|(t, _)| *t - t0)
        .collect();
    let ms = |v: u64| Duration::from_millis(v);
    // Timer E doubles from T1 and is capped at T2 = 4 s.
    assert_eq!(
        &byes[..6],
        &[ms(5000), ms(5500), ms(6500), ms(8500), ms(12500), ms(16500)]
    );
    let evs = events(&mut ep);
    let s = ended(&evs).unwrap();
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(s.hangup, Some(Side::Local));
    assert_eq!(
        s.talk,
        Some(Duration::from_secs(37)),
        "timer F: 64*T1 after the BYE"
    );
    assert!(s.hangup_unconfirmed, "nobody confirmed the BYE");
}

/// Which final response to our BYE confirms the far end let the call go:
/// a 2xx, or 481 (it has no such call); an error leaves it unconfirmed.
#[test]
fn only_a_2xx_or_481_to_our_bye_confirms_the_hang_up() {
    for (code, unconfirmed) in [(200, false), (481, false), (500, true), (403, true)] {
        let mut ep = endpoint(Transport::Udp);
        let t0 = Instant::now();
        let (id, inv) = start(&mut ep, t0, params());
        reply(&mut ep, t0, &inv, 200);
        let _ = (sent(&mut ep), events(&mut ep));
        ep.hangup(t0 + SECOND, id);
        let bye = request(&sent(&mut ep)[0]).clone();
        assert_eq!(bye.method, Method::Bye);
        ep.handle_bytes(t0 + SECOND, &Response::to(&bye, code, "x", None).encode())
            .unwrap();
        let s = ended(&events(&mut ep)).cloned().unwrap();
        assert_eq!(s.outcome, Outcome::Answered, "{code}");
        assert_eq!(s.hangup_unconfirmed, unconfirmed, "{code}");
    }
    // The far end hanging up needs no confirmation from it.
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let bye = from_peer(&inv, Method::Bye, 1);
    ep.handle_bytes(t0 + SECOND, &bye.encode()).unwrap();
    let s = ended(&events(&mut ep)).cloned().unwrap();
    assert_eq!(s.hangup, Some(Side::Remote));
    assert!(!s.hangup_unconfirmed);
}

#[test]
fn unreachable_peer_ends_waiting_calls_only() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, a) = start(&mut ep, t0, params());
    let (_, _b) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &a, 180);
    let _ = events(&mut ep);
    ep.handle_unreachable(t0);
    let evs = events(&mut ep);
    assert_eq!(evs.len(), 1);
    assert_eq!(ended(&evs).unwrap().outcome, Outcome::Unreachable);
    assert_eq!(ep.live_calls(), 1);
}

#[test]
fn ended_calls_are_forgotten_after_64_t1_and_late_responses_become_stray() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 486);
    let _ = sent(&mut ep);
    let _ = run_until(&mut ep, t0 + 33 * SECOND);
    assert!(ep.poll_timeout().is_none());
    reply(&mut ep, t0 + 34 * SECOND, &inv, 486);
    assert!(sent(&mut ep).is_empty());
    assert_eq!(ep.stats().stray, 1);
}

/// A 200 to `inv` from the branch tagged `tag`, with `extra` headers.
fn ok_from(inv: &Request, tag: &str, extra: &[(&str, &str)]) -> Response {
    let mut r = Response::to(inv, 200, "OK", Some(tag));
    r.headers
        .push("Contact", format!("<sip:{tag}@127.0.0.1:5060>"));
    for (n, v) in extra {
        r.headers.push(*n, *v);
    }
    r.headers.push("Content-Type", "application/sdp");
    r.body = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\n".to_vec();
    r
}

/// The first response the endpoint sent since the last look.
fn first_response(ep: &mut Endpoint) -> Response {
    sent(ep)
        .into_iter()
        .find_map(|m| match m {
            Message::Response(r) => Some(r),
            _ => None,
        })
        .expect("a reply")
}

/// A request from the callee (tag `peer`) in the call's dialog.
fn from_peer(inv: &Request, method: Method, cseq: u32) -> Request {
    let mut q = Request::new(method.clone(), "sip:dialler@127.0.0.1:5070");
    q.headers.push(
        "Via",
        format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp{cseq}{method}"),
    );
    q.headers.push("From", "<sip:callee@127.0.0.1>;tag=peer");
    q.headers.push("To", inv.headers.get("From").unwrap());
    q.headers
        .push("Call-ID", inv.headers.get("Call-ID").unwrap());
    q.headers.push("CSeq", format!("{cseq} {method}"));
    q
}

/// A call answered by `peer`; returns the endpoint, start time and INVITE.
fn answered(transport: Transport, extra: &[(&str, &str)]) -> (Endpoint, Instant, Request) {
    let mut ep = endpoint(transport);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    ep.handle_bytes(t0, &ok_from(&inv, "peer", extra).encode())
        .unwrap();
    assert_eq!(request(&sent(&mut ep)[0]).method, Method::Ack);
    let _ = events(&mut ep);
    (ep, t0, inv)
}

#[test]
fn a_response_with_another_branch_is_not_taken_for_ours() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let mut forged = Response::to(&inv, 486, "Busy Here", Some("x"));
    forged.headers.set(
        "Via",
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnotours;rport",
    );
    ep.handle_bytes(t0, &forged.encode()).unwrap();
    assert!(sent(&mut ep).is_empty(), "no ACK for another transaction");
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.stats().stray, 1);
    assert_eq!(ep.live_calls(), 1);
    // A BYE response whose CSeq method says INVITE is not our BYE's either.
    reply(&mut ep, t0, &inv, 180);
    assert_eq!(ep.live_calls(), 1);
}

#[test]
fn a_bye_with_the_right_call_id_but_wrong_tags_gets_481_and_the_call_goes_on() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut bad_from = from_peer(&inv, Method::Bye, 2);
    bad_from
        .headers
        .set("From", "<sip:callee@127.0.0.1>;tag=intruder");
    ep.handle_bytes(t0 + SECOND, &bad_from.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 481);
    let mut bad_to = from_peer(&inv, Method::Bye, 2);
    bad_to
        .headers
        .set("To", "<sip:dialler@127.0.0.1>;tag=wrong");
    ep.handle_bytes(t0 + SECOND, &bad_to.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 481);
    let mut no_tag = from_peer(&inv, Method::Bye, 2);
    no_tag.headers.set("From", "<sip:callee@127.0.0.1>");
    ep.handle_bytes(t0 + SECOND, &no_tag.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 481);
    assert!(events(&mut ep).is_empty(), "the call is still up");
    assert_eq!(ep.live_calls(), 1);
    // The real BYE ends it.
    ep.handle_bytes(t0 + 2 * SECOND, &from_peer(&inv, Method::Bye, 2).encode())
        .unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    assert_eq!(ended(&events(&mut ep)).unwrap().hangup, Some(Side::Remote));
}

/// A call with credentials, answered and hung up by us `after` its start:
/// the endpoint, the start and our BYE.
fn hanging_up_with_credentials(after: Duration) -> (Endpoint, Instant, Request) {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let p = params_with_credentials();
    let (id, inv) = start(&mut ep, t0, p);
    reply(&mut ep, t0, &inv, 200);
    let _ = sent(&mut ep);
    let _ = events(&mut ep);
    ep.hangup(t0 + after, id);
    let bye = request(&sent(&mut ep)[0]).clone();
    assert_eq!(bye.method, Method::Bye);
    (ep, t0, bye)
}

#[test]
fn a_challenged_bye_is_sent_again_with_credentials() {
    let (mut ep, t0, bye) = hanging_up_with_credentials(5 * SECOND);
    let mut challenge = Response::to(&bye, 407, "Proxy Authentication Required", None);
    challenge.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\"",
    );
    ep.handle_bytes(t0 + 5 * SECOND, &challenge.encode())
        .unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1);
    let bye2 = request(&out[0]);
    assert_eq!(bye2.method, Method::Bye);
    let (n1, _) = message::cseq(&bye.headers).unwrap();
    assert_eq!(message::cseq(&bye2.headers).unwrap(), (n1 + 1, Method::Bye));
    assert_ne!(top_branch(&bye2.headers), top_branch(&bye.headers));
    let auth = bye2.headers.get("Proxy-Authorization").unwrap();
    assert!(
        auth.contains("username=\"user\"") && auth.contains("uri=\"sip:callee@127.0.0.1:5060\"")
    );
    assert!(
        events(&mut ep).is_empty(),
        "the call is not over until the BYE is accepted"
    );
    ep.handle_bytes(
        t0 + 5 * SECOND,
        &Response::to(bye2, 200, "OK", None).encode(),
    )
    .unwrap();
    let s = ended(&events(&mut ep)).cloned().unwrap();
    assert_eq!(s.hangup, Some(Side::Local));
    assert!(!s.hangup_unconfirmed, "the BYE sent again was accepted");
}

#[test]
fn a_forked_200_with_another_tag_is_acked_and_hung_up() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let fork = ok_from(&inv, "other", &[("Record-Route", "<sip:edge2.example;lr>")]);
    ep.handle_bytes(t0 + SECOND, &fork.encode()).unwrap();
    let out = sent(&mut ep);
    let methods: Vec<Method> = out.iter().map(|m| request(m).method.clone()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    for m in &out {
        let q = request(m);
        assert_eq!(tag_of(q.headers.get("To").unwrap()), Some("other"));
        assert_eq!(q.uri, "sip:other@127.0.0.1:5060");
        assert_eq!(q.headers.get("Route"), Some("<sip:edge2.example;lr>"));
    }
    let fork_bye = request(&out[1]).clone();
    // Its retransmission gets the same ACK, no second BYE.
    ep.handle_bytes(t0 + 2 * SECOND, &fork.encode()).unwrap();
    let again = sent(&mut ep);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], out[0]);
    ep.handle_bytes(
        t0 + 2 * SECOND,
        &Response::to(&fork_bye, 200, "OK", None).encode(),
    )
    .unwrap();
    assert!(
        events(&mut ep).is_empty(),
        "the first answer's call goes on"
    );
    assert_eq!(ep.live_calls(), 1);
}

#[test]
fn a_200_after_the_call_gave_up_is_acked_and_hung_up() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let _ = run_until(&mut ep, t0 + 33 * SECOND);
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Timeout);
    ep.handle_bytes(t0 + 33 * SECOND, &ok_from(&inv, "late", &[]).encode())
        .unwrap();
    let methods: Vec<Method> = sent(&mut ep)
        .iter()
        .map(|m| request(m).method.clone())
        .collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
}

#[test]
fn the_route_set_keeps_every_record_route_entry_in_reverse_order() {
    let (mut ep, t0, inv) = {
        let mut ep = endpoint(Transport::Udp);
        let t0 = Instant::now();
        let mut p = params();
        p.max_talk = Some(SECOND);
        let (_, inv) = start(&mut ep, t0, p);
        let ok = ok_from(
            &inv,
            "peer",
            &[
                ("Record-Route", "<sip:p1.example;lr>, <sip:p2.example;lr>"),
                ("Record-Route", "<sip:p3.example;lr>"),
            ],
        );
        ep.handle_bytes(t0, &ok.encode()).unwrap();
        (ep, t0, inv)
    };
    let ack = request(&sent(&mut ep)[0]).clone();
    let routes: Vec<&str> = ack.headers.get_all("Route").collect();
    assert_eq!(
        routes,
        vec![
            "<sip:p3.example;lr>",
            "<sip:p2.example;lr>",
            "<sip:p1.example;lr>"
        ]
    );
    let _ = run_until(&mut ep, t0 + SECOND);
    let _ = inv;
    // Strict routing: a first route without `lr` becomes the Request-URI.
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, t0, params());
    let ok = ok_from(&inv, "peer", &[("Record-Route", "<sip:strict.example>")]);
    ep.handle_bytes(t0, &ok.encode()).unwrap();
    let ack = request(&sent(&mut ep)[0]).clone();
    assert_eq!(ack.uri, "sip:strict.example");
    assert_eq!(ack.headers.get("Route"), Some("<sip:peer@127.0.0.1:5060>"));
}

const HOLD: &[u8] = b"v=0\r\no=peer 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n";

/// RFC 3264 8.3.2: a re-INVITE whose offer still lists the codec in use
/// (PCMU, from the answer) is answered in it whatever the offer's order;
/// one that no longer lists it moves the session to the offer's codec,
/// which later offers then keep.
#[test]
fn a_re_invite_keeps_the_codec_in_use_while_the_offer_lists_it() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut cseq = 1;
    let mut offer = |ep: &mut Endpoint, payloads: &str| {
        cseq += 1;
        let mut q = from_peer(&inv, Method::Invite, cseq);
        q.headers.push("Content-Type", "application/sdp");
        q.body = format!("v=0\r\no=peer 1 {cseq} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP {payloads}\r\na=rtpmap:101 telephone-event/8000\r\n").into_bytes();
        ep.handle_bytes(t0 + SECOND * cseq, &q.encode()).unwrap();
        let ok = first_response(ep);
        assert_eq!(ok.code, 200);
        ep.handle_bytes(
            t0 + SECOND * cseq,
            &from_peer(&inv, Method::Ack, cseq).encode(),
        )
        .unwrap();
        let _ = events(ep);
        let body = String::from_utf8(ok.body).unwrap();
        body.lines()
            .find(|l| l.starts_with("m=audio"))
            .map(|l| l.split(' ').skip(3).collect::<Vec<_>>().join(" "))
            .unwrap()
    };
    assert_eq!(offer(&mut ep, "8 0 101"), "0 101", "PCMU kept");
    assert_eq!(offer(&mut ep, "8 101"), "8 101", "PCMU no longer offered");
    assert_eq!(offer(&mut ep, "0 8 101"), "8 101", "PCMA now kept");
}

#[test]
fn a_hold_re_invite_is_answered_recvonly_and_its_200_repeated_until_the_ack() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut reinvite = from_peer(&inv, Method::Invite, 2);
    reinvite.headers.push("Content-Type", "application/sdp");
    reinvite.body = HOLD.to_vec();
    ep.handle_bytes(t0 + SECOND, &reinvite.encode()).unwrap();
    let ok = response(&sent(&mut ep)[0]).clone();
    assert_eq!(ok.code, 200);
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert!(body.contains("a=recvonly"), "{body}");
    assert!(body.contains("RTP/AVP 8 101"), "the offer's codec: {body}");
    let ours = String::from_utf8(inv.body.clone()).unwrap();
    let version = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("o="))
            .and_then(|l| l.split(' ').nth(2))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(
        version(&body),
        version(&ours) + 1,
        "a changed SDP has a new version"
    );
    let evs = events(&mut ep);
    assert!(
        matches!(&evs[..], [CallEvent::MediaChanged { media }] if media.direction == sdp::Direction::SendOnly && media.addr.port() == 6002)
    );
    // Timer G: the 200 again at T1, 2*T1, ... until the ACK.
    let out = run_until(&mut ep, t0 + SECOND + Duration::from_millis(1600));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, m)| response(m).code == 200));
    let ack = from_peer(&inv, Method::Ack, 2);
    ep.handle_bytes(t0 + 3 * SECOND, &ack.encode()).unwrap();
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    assert!(out.is_empty(), "no more 200s after the ACK: {out:?}");
    // A retransmitted re-INVITE gets the same 200; an older CSeq gets 500.
    ep.handle_bytes(t0 + 61 * SECOND, &reinvite.encode())
        .unwrap();
    assert_eq!(sent(&mut ep), vec![Message::Response(ok)]);
    let old = from_peer(&inv, Method::Invite, 1);
    ep.handle_bytes(t0 + 61 * SECOND, &old.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 500);
}

#[test]
fn a_re_invite_never_acked_ends_the_call_with_a_bye() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut reinvite = from_peer(&inv, Method::Invite, 2);
    reinvite.body = HOLD.to_vec();
    ep.handle_bytes(t0, &reinvite.encode()).unwrap();
    let _ = sent(&mut ep);
    let out = run_until(&mut ep, t0 + 33 * SECOND);
    let byes: Vec<Instant> = out
        .iter()
        .filter(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Bye))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        byes.first().copied(),
        Some(t0 + 32 * SECOND),
        "timer H = 64*T1"
    );
}

#[test]
fn an_update_with_an_unusable_offer_gets_488_and_a_good_one_an_answer() {
    let (mut ep, t0, inv) = answered(Transport::Tcp, &[]);
    let mut update = from_peer(&inv, Method::Update, 2);
    update.body = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 18\r\n".to_vec();
    ep.handle_bytes(t0, &update.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 488);
    let mut update = from_peer(&inv, Method::Update, 3);
    update.body = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6004 RTP/AVP 0\r\na=inactive\r\n".to_vec();
    ep.handle_bytes(t0, &update.encode()).unwrap();
    let ok = response(&sent(&mut ep)[0]).clone();
    assert_eq!(ok.code, 200);
    assert!(String::from_utf8(ok.body).unwrap().contains("a=inactive"));
    assert!(
        run_until(&mut ep, t0 + 40 * SECOND).is_empty(),
        "UPDATE has no ACK and TCP no retransmission"
    );
}

#[test]
fn a_reliable_provisional_gets_one_prack_with_its_rack() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    assert!(inv.headers.get("Supported").unwrap().contains("100rel"));
    let mut p183 = Response::to(&inv, 183, "Session Progress", Some("peer"));
    p183.headers.push("Require", "100rel");
    p183.headers.push("RSeq", "4711");
    p183.headers.push("Contact", "<sip:peer@127.0.0.1:5060>");
    ep.handle_bytes(t0, &p183.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1);
    let prack = request(&out[0]).clone();
    assert_eq!(prack.method, Method::Prack);
    assert_eq!(prack.headers.get("RAck"), Some("4711 1 INVITE"));
    assert_eq!(tag_of(prack.headers.get("To").unwrap()), Some("peer"));
    assert_eq!(message::cseq(&prack.headers).unwrap(), (2, Method::Prack));
    // A retransmission of the same 183 gets no second PRACK.
    ep.handle_bytes(t0, &p183.encode()).unwrap();
    assert!(sent(&mut ep).is_empty());
    ep.handle_bytes(t0, &Response::to(&prack, 200, "OK", None).encode())
        .unwrap();
    // Another fork numbers its own reliable provisionals (RFC 3262 4,
    // errata 4600): its first is PRACKed whatever its RSeq, in its dialog.
    let mut fork = Response::to(&inv, 180, "Ringing", Some("forkB"));
    fork.headers.push("Require", "100rel");
    fork.headers.push("RSeq", "7");
    fork.headers.push("Contact", "<sip:forkB@127.0.0.1:5062>");
    ep.handle_bytes(t0, &fork.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1, "{out:?}");
    let prack_b = request(&out[0]).clone();
    assert_eq!(prack_b.headers.get("RAck"), Some("7 1 INVITE"));
    assert_eq!(tag_of(prack_b.headers.get("To").unwrap()), Some("forkB"));
    ep.handle_bytes(t0, &Response::to(&prack_b, 200, "OK", None).encode())
        .unwrap();
    // The INVITE's final response still matches after the PRACK used CSeq 2.
    reply(&mut ep, t0 + SECOND, &inv, 486);
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Busy);
}

/// RFC 3262 5 / RFC 3264: the SDP answer in a reliable 183 is the
/// session's answer; the 200 that follows need not repeat it, and the
/// call is answered with the 183's media, not without audio.
#[test]
fn the_answer_in_a_reliable_183_serves_a_200_without_a_body() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let mut p183 = Response::to(&inv, 183, "Session Progress", Some("peer"));
    p183.headers.push("Require", "100rel");
    p183.headers.push("RSeq", "1");
    p183.headers.push("Contact", "<sip:peer@127.0.0.1:5060>");
    p183.headers.push("Content-Type", "application/sdp");
    p183.body = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6010 RTP/AVP 8\r\n".to_vec();
    ep.handle_bytes(t0, &p183.encode()).unwrap();
    let prack = request(&sent(&mut ep)[0]).clone();
    ep.handle_bytes(t0, &Response::to(&prack, 200, "OK", None).encode())
        .unwrap();
    let mut ok = Response::to(&inv, 200, "OK", Some("peer"));
    ok.headers.push("Contact", "<sip:peer@127.0.0.1:5060>");
    ep.handle_bytes(t0 + SECOND, &ok.encode()).unwrap();
    let media = events(&mut ep)
        .into_iter()
        .find_map(|e| match e {
            CallEvent::Answered { media, .. } => Some(media),
            _ => None,
        })
        .expect("answered");
    let media = media.expect("the 183's answer");
    assert_eq!(media.addr.port(), 6010);
    assert_eq!(media.codec(), Some(8));
}

#[test]
fn a_421_for_100rel_and_a_422_for_min_se_are_retried_once() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let mut r421 = Response::to(&inv, 421, "Extension Required", Some("p"));
    r421.headers.push("Require", "100rel");
    ep.handle_bytes(t0, &r421.encode()).unwrap();
    let out = sent(&mut ep);
    let inv2 = request(&out[1]).clone();
    assert_eq!(inv2.method, Method::Invite);
    assert_eq!(inv2.headers.get("Require"), Some("100rel"));
    assert_eq!(message::cseq(&inv2.headers).unwrap(), (2, Method::Invite));
    let mut r422 = Response::to(&inv2, 422, "Session Interval Too Small", Some("p"));
    r422.headers.push("Min-SE", "1800");
    ep.handle_bytes(t0, &r422.encode()).unwrap();
    let out = sent(&mut ep);
    let inv3 = request(&out[1]).clone();
    assert_eq!(inv3.headers.get("Session-Expires"), Some("1800"));
    assert_eq!(inv3.headers.get("Min-SE"), Some("1800"));
    assert!(events(&mut ep).is_empty());
    // The same 422 again is final: no loop.
    let mut again = Response::to(&inv3, 422, "Session Interval Too Small", Some("p"));
    again.headers.push("Min-SE", "1800");
    ep.handle_bytes(t0, &again.encode()).unwrap();
    assert_eq!(ended(&events(&mut ep)).unwrap().final_code, Some(422));
}

#[test]
fn a_redirect_is_followed_only_to_the_same_number_and_at_most_three_times() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, mut inv) = start(&mut ep, t0, params());
    for hop in 0..3 {
        let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
        r.headers.push(
            "Contact",
            format!("<sip:+15551230000@10.0.0.{hop}:5060>;q=0.5, <sip:+19995550000@10.9.9.9>"),
        );
        ep.handle_bytes(t0, &r.encode()).unwrap();
        let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit_to()).collect();
        // The 302's ACK goes where the INVITE went; the new INVITE to the
        // Contact's address (RFC 3261 8.1.3.4).
        let before = (hop > 0).then(|| format!("10.0.0.{}:5060", hop - 1).parse().unwrap());
        assert_eq!(out[0].to, before);
        assert_eq!(
            out[1].to,
            Some(format!("10.0.0.{hop}:5060").parse().unwrap())
        );
        let parse = |b: &[u8]| message::parse(b, false).unwrap().0;
        assert_eq!(request(&parse(&out[0].bytes)).method, Method::Ack);
        inv = request(&parse(&out[1].bytes)).clone();
        assert_eq!(inv.uri, format!("sip:+15551230000@10.0.0.{hop}:5060"));
        assert_eq!(
            inv.headers.get("To"),
            Some("<sip:+15551230000@127.0.0.1:5060>")
        );
    }
    let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
    r.headers.push("Contact", "<sip:+15551230000@10.0.0.9>");
    ep.handle_bytes(t0, &r.encode()).unwrap();
    assert_eq!(
        sent(&mut ep).len(),
        1,
        "the fourth redirect is not followed"
    );
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Failure);

    // A redirect to another number is never followed: it was not screened.
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, t0, params());
    let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
    r.headers.push("Contact", "<sip:+19995550000@10.9.9.9>");
    ep.handle_bytes(t0, &r.encode()).unwrap();
    assert_eq!(sent(&mut ep).len(), 1);
    assert_eq!(ended(&events(&mut ep)).unwrap().final_code, Some(302));
    // Nor to a user part the next hop may read as another number: an
    // escape (RFC 4475 3.1.1.3 esc01's form), letters, a key.
    for contact in [
        "<sip:%2B15551230000@10.9.9.9>",
        "<sip:1555123000%30@10.9.9.9>",
        "<sip:%15551230000@10.9.9.9>",
        "<sip:+1555123000x0@10.9.9.9>",
        "<sip:*15551230000@10.9.9.9>",
    ] {
        let mut ep = endpoint(Transport::Udp);
        let (_, inv) = start(&mut ep, t0, params());
        let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
        r.headers.push("Contact", contact);
        ep.handle_bytes(t0, &r.encode()).unwrap();
        assert_eq!(sent(&mut ep).len(), 1, "{contact}: only the ACK");
        assert_eq!(
            ended(&events(&mut ep)).unwrap().final_code,
            Some(302),
            "{contact}"
        );
    }

    // The preferred Contact (highest q) first, its Request-URI without the
    // method parameter or headers a Request-URI may not carry.
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, t0, params());
    let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
    r.headers.push(
        "Contact",
        "<sip:+15551230000@10.0.0.1;q=x>;q=0.1, <sip:+15551230000@10.0.0.2;method=BYE;transport=udp?Subject=evil>;q=0.9",
    );
    ep.handle_bytes(t0, &r.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(
        request(&out[1]).uri,
        "sip:+15551230000@10.0.0.2;transport=udp"
    );

    // A Contact naming a host keeps the destination in use (no lookups
    // in this layer): here the driver's default peer.
    let mut ep = endpoint(Transport::Udp);
    let (_, inv) = start(&mut ep, t0, params());
    let mut r = Response::to(&inv, 302, "Moved Temporarily", Some("r"));
    r.headers
        .push("Contact", "<sip:+15551230000@other.example.net>");
    ep.handle_bytes(t0, &r.encode()).unwrap();
    let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit_to()).collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].to, None);

    // Credentials answered before the redirect named the old Request-URI:
    // the new INVITE goes without them, and the new target's challenge is
    // answered for its own URI.
    let (mut ep, t0, _, out) =
        challenged(401, "WWW-Authenticate", "Digest realm=\"a\", nonce=\"n1\"");
    let authed = request(&out[1]).clone();
    assert!(authed.headers.get("Authorization").is_some());
    let mut r = Response::to(&authed, 302, "Moved Temporarily", Some("r"));
    r.headers.push("Contact", "<sip:+15551230000@10.0.0.7>");
    ep.handle_bytes(t0, &r.encode()).unwrap();
    let out = sent(&mut ep);
    let moved = request(&out[1]).clone();
    assert_eq!(moved.uri, "sip:+15551230000@10.0.0.7");
    assert!(moved.headers.get("Authorization").is_none(), "{moved:?}");
    let mut again = Response::to(&moved, 401, "Challenge", Some("r2"));
    again
        .headers
        .push("WWW-Authenticate", "Digest realm=\"b\", nonce=\"n2\"");
    ep.handle_bytes(t0, &again.encode()).unwrap();
    let out = sent(&mut ep);
    let auth = request(&out[1])
        .headers
        .get("Authorization")
        .unwrap()
        .to_string();
    assert!(auth.contains("uri=\"sip:+15551230000@10.0.0.7\""), "{auth}");
}

/// A call answered with a 120 s session we refresh (the peer takes
/// UPDATE), run to its first refresh: the endpoint, the start, the UPDATE
/// and when it went.
fn first_refresh() -> (Endpoint, Instant, Request, Instant) {
    let (mut ep, t0, _) = answered(
        Transport::Udp,
        &[
            ("Session-Expires", "120;refresher=uac"),
            ("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"),
        ],
    );
    let out = run_until(&mut ep, t0 + 61 * SECOND);
    let update = request(&out[0].1).clone();
    (ep, t0, update, out[0].0)
}

#[test]
fn session_timers_refresh_when_we_are_the_refresher_and_hang_up_when_the_peer_fails_to() {
    let (mut ep, t0, update, at) = first_refresh();
    assert_eq!(at, t0 + 60 * SECOND);
    assert_eq!(update.method, Method::Update);
    assert!(
        update
            .headers
            .get("Session-Expires")
            .unwrap()
            .starts_with("120")
    );
    ep.handle_bytes(
        t0 + 61 * SECOND,
        &Response::to(&update, 200, "OK", None).encode(),
    )
    .unwrap();
    assert!(events(&mut ep).is_empty());

    let (mut ep, t0, inv) = answered(Transport::Udp, &[("Session-Expires", "120;refresher=uas")]);
    // The peer refreshes once at 50 s; then stops.
    let refresh = from_peer(&inv, Method::Update, 2);
    let _ = run_until(&mut ep, t0 + 50 * SECOND);
    ep.handle_bytes(t0 + 50 * SECOND, &refresh.encode())
        .unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    let out = run_until(&mut ep, t0 + 200 * SECOND);
    let bye_at = out
        .iter()
        .find(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Bye))
        .map(|(t, _)| *t);
    assert_eq!(
        bye_at,
        Some(t0 + 50 * SECOND + 88 * SECOND),
        "120 s less 32 s after the last refresh"
    );
}

/// RFC 4028 7.4: a 422 to our refresh is retried at once with the peer's
/// Min-SE; our refreshes say our own Min-SE.
#[test]
fn a_422_to_our_refresh_is_retried_with_the_peers_min_se() {
    let (mut ep, t0, update, _) = first_refresh();
    assert_eq!(update.headers.get("Min-SE"), Some("90"));
    let mut too_small = Response::to(&update, 422, "Session Interval Too Small", None);
    too_small.headers.push("Min-SE", "1800");
    ep.handle_bytes(t0 + 61 * SECOND, &too_small.encode())
        .unwrap();
    let again = sent(&mut ep)
        .into_iter()
        .find_map(|m| match m {
            Message::Request(q) if q.method == Method::Update => Some(q),
            _ => None,
        })
        .expect("the refresh again");
    assert!(
        again
            .headers
            .get("Session-Expires")
            .unwrap()
            .starts_with("1800"),
        "{again:?}"
    );
    assert!(message::cseq(&again.headers).unwrap().0 > message::cseq(&update.headers).unwrap().0);
}

/// RFC 4028 9: a refresh from a peer that does not say it supports
/// timers makes us the refresher, and our 200 carries no Require: timer.
#[test]
fn a_refresh_from_a_peer_without_timer_support_makes_us_the_refresher() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut reinvite = from_peer(&inv, Method::Invite, 2);
    reinvite
        .headers
        .push("Contact", "<sip:peer@127.0.0.1:5060>");
    reinvite.headers.push("Session-Expires", "120");
    ep.handle_bytes(t0 + SECOND, &reinvite.encode()).unwrap();
    let ok = sent(&mut ep)
        .into_iter()
        .find_map(|m| match m {
            Message::Response(r) if r.code == 200 => Some(r),
            _ => None,
        })
        .expect("a 200");
    assert_eq!(ok.headers.get("Session-Expires"), Some("120;refresher=uas"));
    assert!(ok.headers.get("Require").is_none(), "{ok:?}");
    let mut ack = from_peer(&inv, Method::Ack, 2);
    ack.headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKackfor2");
    ep.handle_bytes(t0 + SECOND, &ack.encode()).unwrap();
    // We refresh at half the interval, not hang up at its end.
    let out = run_until(&mut ep, t0 + 62 * SECOND);
    let refresh = out.iter().find_map(|(t, m)| match m {
        Message::Request(q) if q.method == Method::Invite => Some(*t),
        _ => None,
    });
    assert_eq!(refresh, Some(t0 + SECOND + 60 * SECOND));
}

/// RFC 4028 9: a peer that supports timers and asks for an interval below
/// our 90 s minimum gets 422 with our Min-SE, the call and its media left
/// as they were, and its retry with 90 s is taken; a peer that does not
/// support them (it could not retry) has its interval raised to 90 s.
#[test]
fn a_refresh_below_our_min_se_gets_422_when_the_peer_can_retry() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut update = from_peer(&inv, Method::Update, 2);
    update.headers.push("Supported", "timer");
    update.headers.push("Session-Expires", "60;refresher=uac");
    ep.handle_bytes(t0 + SECOND, &update.encode()).unwrap();
    let r = first_response(&mut ep);
    assert_eq!(r.code, 422, "{r:?}");
    assert_eq!(r.headers.get("Min-SE"), Some("90"));
    assert!(r.headers.get("Session-Expires").is_none());
    assert!(ep.poll_event().is_none(), "nothing changed");
    // A re-INVITE likewise: its retransmission gets the same 422, and the
    // ACK for it is taken without a reply.
    let mut reinvite = from_peer(&inv, Method::Invite, 20);
    reinvite
        .headers
        .push("Contact", "<sip:peer@127.0.0.1:5060>");
    reinvite.headers.push("Supported", "timer");
    reinvite.headers.push("Session-Expires", "89");
    for _ in 0..2 {
        ep.handle_bytes(t0 + SECOND, &reinvite.encode()).unwrap();
        let r = first_response(&mut ep);
        assert_eq!((r.code, r.headers.get("Min-SE")), (422, Some("90")));
    }
    let mut ack = from_peer(&inv, Method::Ack, 20);
    ack.headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp20INVITE");
    ep.handle_bytes(t0 + SECOND, &ack.encode()).unwrap();
    assert!(sent(&mut ep).is_empty());
    assert!(ep.poll_event().is_none(), "nothing changed");
    let mut again = from_peer(&inv, Method::Update, 21);
    again.headers.push("Supported", "timer");
    again.headers.push("Session-Expires", "90;refresher=uac");
    again.headers.push("Min-SE", "90");
    ep.handle_bytes(t0 + 2 * SECOND, &again.encode()).unwrap();
    let ok = first_response(&mut ep);
    assert_eq!(ok.code, 200, "{ok:?}");
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(ok.headers.get("Require"), Some("timer"));
    // Without timer support: raised, not refused.
    let mut old = from_peer(&inv, Method::Update, 22);
    old.headers.push("Session-Expires", "30");
    ep.handle_bytes(t0 + 3 * SECOND, &old.encode()).unwrap();
    let ok = first_response(&mut ep);
    assert_eq!(ok.code, 200, "{ok:?}");
    assert_eq!(ok.headers.get("Session-Expires"), Some("90;refresher=uas"));
}

/// RFC 3261 20.1 / 21.4.7 (RFC 4475 sdp01): a re-INVITE whose Accept
/// leaves out SDP, or gives it q=0, gets 406 and the media stays; one
/// that takes it among others, or `application/*`, gets the answer; an
/// UPDATE with no body is answered with none, whatever it accepts.
#[test]
fn a_re_invite_that_accepts_no_sdp_gets_406() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let offer = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    let cases = [
        ("text/nobodyKnowsThis", 406),
        ("application/sdp;q=0, text/plain", 406),
        ("application/sdp;q=0, */*", 406),
        ("text/plain, application/sdp;q=0.5", 200),
        ("application/*", 200),
    ];
    for (i, (accept, code)) in cases.into_iter().enumerate() {
        let cseq = 2 + i as u32;
        let mut q = from_peer(&inv, Method::Invite, cseq);
        q.headers.push("Contact", "<sip:peer@127.0.0.1:5060>");
        q.headers.push("Accept", accept);
        q.headers.push("Content-Type", "application/sdp");
        q.body = offer.to_vec();
        ep.handle_bytes(t0 + SECOND * cseq, &q.encode()).unwrap();
        let r = sent(&mut ep)
            .into_iter()
            .find_map(|m| match m {
                Message::Response(r) => Some(r),
                _ => None,
            })
            .expect("a reply");
        assert_eq!(r.code, code, "{accept}: {r:?}");
        assert_eq!(r.body.is_empty(), code == 406, "{accept}");
        let changed = std::iter::from_fn(|| ep.poll_event())
            .any(|(_, e)| matches!(e, CallEvent::MediaChanged { .. }));
        assert_eq!(changed, code == 200, "{accept}");
        let mut ack = from_peer(&inv, Method::Ack, cseq);
        ack.headers.set(
            "Via",
            format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp{cseq}INVITE"),
        );
        if code == 200 {
            ack.headers.set(
                "Via",
                format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack{cseq}"),
            );
        }
        ep.handle_bytes(t0 + SECOND * cseq, &ack.encode()).unwrap();
        let _ = sent(&mut ep);
    }
    let mut update = from_peer(&inv, Method::Update, 9);
    update.headers.push("Accept", "text/nobodyKnowsThis");
    ep.handle_bytes(t0 + 9 * SECOND, &update.encode()).unwrap();
    let r = first_response(&mut ep);
    assert_eq!((r.code, r.body.is_empty()), (200, true), "{r:?}");
}

/// RFC 3261 17.2.1: over UDP a refusal of a re-INVITE (here 488, no
/// usable codec) is sent again on timer G until its ACK, then no more; one
/// never ACKed is given up at timer H without ending the call (a 2xx's
/// missing ACK ends it; a refusal's does not).
#[test]
fn a_refused_re_invite_is_retransmitted_until_its_ack() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let refuse = |ep: &mut Endpoint, cseq: u32| {
        let mut q = from_peer(&inv, Method::Invite, cseq);
        q.headers.push("Contact", "<sip:peer@127.0.0.1:5060>");
        q.headers.push("Content-Type", "application/sdp");
        q.body = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 18\r\n".to_vec();
        ep.handle_bytes(t0 + SECOND, &q.encode()).unwrap();
        assert_eq!(first_response(ep).code, 488);
    };
    refuse(&mut ep, 2);
    let again = |out: &[(Instant, Message)]| {
        out.iter()
            .filter(|(_, m)| matches!(m, Message::Response(r) if r.code == 488))
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
    };
    let t1 = Duration::from_millis(500);
    let resent = again(&run_until(&mut ep, t0 + SECOND + 2 * t1));
    assert_eq!(resent, vec![t0 + SECOND + t1], "timer G from T1");
    let mut ack = from_peer(&inv, Method::Ack, 2);
    ack.headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp2INVITE");
    ep.handle_bytes(t0 + 2 * SECOND, &ack.encode()).unwrap();
    assert!(
        again(&run_until(&mut ep, t0 + 10 * SECOND)).is_empty(),
        "after the ACK"
    );
    // A 420 (a Require we lack) is a refusal like the others.
    let mut q = from_peer(&inv, Method::Invite, 3);
    q.headers.push("Require", "nosuchextension");
    ep.handle_bytes(t0 + 3 * SECOND, &q.encode()).unwrap();
    assert_eq!(first_response(&mut ep).code, 420);
    let resent_420: Vec<_> = run_until(&mut ep, t0 + 3 * SECOND + 2 * t1)
        .into_iter()
        .filter(|(_, m)| matches!(m, Message::Response(r) if r.code == 420))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(resent_420, vec![t0 + 3 * SECOND + t1], "the 420 on timer G");
    let mut ack = from_peer(&inv, Method::Ack, 3);
    ack.headers
        .set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKp3INVITE");
    ep.handle_bytes(t0 + 4 * SECOND, &ack.encode()).unwrap();
    // Never ACKed: resent up to timer H (64*T1), then given up; the call
    // stays up (no BYE).
    refuse(&mut ep, 4);
    let out = run_until(&mut ep, t0 + SECOND + 70 * t1);
    assert!(again(&out).len() >= 5, "{:?}", again(&out));
    assert!(again(&out).iter().all(|&t| t <= t0 + SECOND + 64 * t1));
    assert!(
        !out.iter()
            .any(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Bye)),
        "a refusal's missing ACK does not end the call"
    );
}

/// RFC 3261 14.2 and 17.2.1: a re-INVITE that arrives while our 2xx to
/// the last one awaits its ACK gets 500 with Retry-After, and over UDP
/// that 500 is sent again on timer G until its own ACK, beside the 2xx,
/// which keeps its own timer; neither ACK stops the other's.
#[test]
fn a_500_beside_an_unacked_2xx_is_retransmitted_until_its_ack() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut hold = from_peer(&inv, Method::Invite, 2);
    hold.headers.push("Content-Type", "application/sdp");
    hold.body = HOLD.to_vec();
    ep.handle_bytes(t0 + SECOND, &hold.encode()).unwrap();
    assert_eq!(first_response(&mut ep).code, 200);
    let _ = events(&mut ep);
    let second = from_peer(&inv, Method::Invite, 3);
    ep.handle_bytes(t0 + SECOND, &second.encode()).unwrap();
    let r = first_response(&mut ep);
    assert_eq!((r.code, r.headers.get("Retry-After")), (500, Some("1")));
    let t1 = Duration::from_millis(500);
    let codes = |out: &[(Instant, Message)]| {
        out.iter()
            .filter_map(|(t, m)| match m {
                Message::Response(r) => Some((*t, r.code)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let out = codes(&run_until(&mut ep, t0 + SECOND + t1));
    assert!(out.contains(&(t0 + SECOND + t1, 200)), "{out:?}");
    assert!(
        out.contains(&(t0 + SECOND + t1, 500)),
        "the 500 on timer G: {out:?}"
    );
    ep.handle_bytes(t0 + 2 * SECOND, &from_peer(&inv, Method::Ack, 3).encode())
        .unwrap();
    let out = codes(&run_until(&mut ep, t0 + 4 * SECOND));
    assert!(
        out.iter().all(|(_, c)| *c == 200),
        "no 500 after its ACK: {out:?}"
    );
    assert!(!out.is_empty(), "the 200 still awaits its ACK");
    ep.handle_bytes(t0 + 4 * SECOND, &from_peer(&inv, Method::Ack, 2).encode())
        .unwrap();
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    assert!(out.is_empty(), "both ACKed: {out:?}");
    assert_eq!(ep.live_calls(), 1);
}

/// RFC 3261 8.2 / 18.3: a request datagram that cannot be read (its body
/// shorter than its Content-Length, no Call-ID) gets a 400 with what
/// could be read of its Via, From, To, Call-ID and CSeq; an ACK or a
/// broken response gets nothing.
#[test]
fn a_broken_request_datagram_gets_a_400() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let from: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let short = "BYE sip:dialler@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKshort\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 50\r\n\r\n";
    assert!(
        ep.handle_bytes_from(t0, Some(from), short.as_bytes())
            .is_err()
    );
    let out = sent_to(&mut ep);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, Some(from));
    let r = response(&out[0].1);
    assert_eq!(r.code, 400);
    assert_eq!(r.headers.get("Call-ID"), Some("c1"));
    assert_eq!(r.headers.get("CSeq"), Some("2 BYE"));
    assert!(tag_of(r.headers.get("To").unwrap()).is_some());
    assert_eq!(top_branch(&r.headers), Some("z9hG4bKshort"));
    // No Call-ID: still answered, with what there is.
    let no_call_id = "OPTIONS sip:dialler@127.0.0.1:5070 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnocid\r\nf: <sip:a@x>;tag=1\r\nt: <sip:b@y>\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert!(
        ep.handle_bytes_from(t0, Some(from), no_call_id.as_bytes())
            .is_err()
    );
    let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit_to()).collect();
    assert_eq!(out.len(), 1);
    let text = String::from_utf8_lossy(&out[0].bytes).into_owned();
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
    assert!(
        text.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnocid"),
        "{text}"
    );
    assert!(text.contains("CSeq: 1 OPTIONS\r\n"), "{text}");
    // An ACK, or a broken response: nothing.
    let ack = short
        .replace("BYE sip", "ACK sip")
        .replace("2 BYE", "2 ACK");
    assert!(
        ep.handle_bytes_from(t0, Some(from), ack.as_bytes())
            .is_err()
    );
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\nContent-Length: 9\r\n\r\n";
    assert!(
        ep.handle_bytes_from(t0, Some(from), resp.as_bytes())
            .is_err()
    );
    assert!(sent_to(&mut ep).is_empty());
}

#[test]
fn the_campaign_caller_id_headers_go_on_the_invite() {
    let mut ep = endpoint(Transport::Udp);
    let mut p = params();
    p.display_name = Some("Acme \"Solar\"".into());
    p.extra_headers = vec![
        (
            "P-Asserted-Identity".into(),
            "<sip:+15557654321@carrier.example>".into(),
        ),
        ("Privacy".into(), "id".into()),
    ];
    let (_, inv) = start(&mut ep, Instant::now(), p);
    assert_eq!(
        inv.headers.get("P-Asserted-Identity"),
        Some("<sip:+15557654321@carrier.example>")
    );
    assert_eq!(inv.headers.get("Privacy"), Some("id"));
    assert!(
        inv.headers
            .get("From")
            .unwrap()
            .starts_with("\"Acme Solar\" <sip:dialler@")
    );
}

/// The record a caller stores before the INVITE names exactly what the
/// INVITE carries; a fresh endpoint (the restarted node, on another port)
/// takes an answered leg back from it and BYEs it in its dialog: same
/// Call-ID and tags, the stored route set and remote target, a CSeq past
/// any sent since; the BYE's 200 ends it.
#[test]
fn an_answered_leg_left_by_a_crash_is_byed_from_its_record() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    let ids = LegIds::random();
    p.ids = Some(ids.clone());
    let mut rec = leg_record(ep.config(), &p, &ids);
    let (_, inv) = start(&mut ep, t0, p);
    assert_eq!(inv.headers.get("Via"), Some(rec.via.as_str()));
    assert_eq!(inv.headers.get("From"), Some(rec.from.as_str()));
    assert_eq!(inv.headers.get("To"), Some(rec.to.as_str()));
    assert_eq!(inv.headers.get("Call-ID"), Some(ids.call_id.as_str()));
    assert_eq!(inv.uri, rec.request_uri);
    let ok = ok_from(
        &inv,
        "peer",
        &[("Record-Route", "<sip:p1.example;lr>, <sip:p2.example;lr>")],
    );
    ep.handle_bytes(t0, &ok.encode()).unwrap();
    let _ = sent(&mut ep);
    let dialog = events(&mut ep)
        .into_iter()
        .find_map(|e| match e {
            CallEvent::Answered { dialog, .. } => Some(dialog),
            _ => None,
        })
        .expect("answered");
    assert_eq!(dialog.remote_tag, "peer");
    assert_eq!(dialog.route, ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]);
    rec.dialog = Some(dialog);
    // The crash: a new endpoint elsewhere.
    let mut again = Endpoint::new(EndpointConfig {
        local: "127.0.0.1:5090".parse().unwrap(),
        transport: Transport::Udp,
        timers: Timers::default(),
        seed: 8,
    });
    let t1 = t0 + 60 * SECOND;
    again.resume_call(t1, rec, None);
    let out = sent(&mut again);
    assert_eq!(out.len(), 1);
    let bye = request(&out[0]);
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, "sip:peer@127.0.0.1:5060", "the remote target");
    assert_eq!(
        bye.headers.get_all("Route").collect::<Vec<_>>(),
        ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    );
    assert_eq!(bye.headers.get("Call-ID"), inv.headers.get("Call-ID"));
    assert_eq!(bye.headers.get("From"), inv.headers.get("From"));
    assert_eq!(tag_of(bye.headers.get("To").unwrap()), Some("peer"));
    let (n, _) = message::cseq(&bye.headers).unwrap();
    assert!(n > 1_000, "CSeq {n}");
    assert!(
        bye.headers.get("Via").unwrap().contains("127.0.0.1:5090"),
        "a new transaction from the new node"
    );
    again
        .handle_bytes(t1, &Response::to(bye, 200, "OK", None).encode())
        .unwrap();
    assert!(ended(&events(&mut again)).is_some());
    assert_eq!(again.live_calls(), 0);
}

/// A leg still ringing at the crash is CANCELled in its INVITE's own
/// transaction (stored Via, CSeq 1); its 487 is ACKed and ends it. If the
/// person answers anyway (the 200 crossing the CANCEL, or an INVITE
/// retried with a branch never stored), the 200 is ACKed and BYEd.
#[test]
fn a_ringing_leg_left_by_a_crash_is_cancelled_and_a_late_200_byed() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    let ids = LegIds::random();
    p.ids = Some(ids.clone());
    let rec = leg_record(ep.config(), &p, &ids);
    let (_, inv) = start(&mut ep, t0, p);
    reply(&mut ep, t0, &inv, 180);

    let fresh = || {
        Endpoint::new(EndpointConfig {
            local: "127.0.0.1:5090".parse().unwrap(),
            transport: Transport::Udp,
            timers: Timers::default(),
            seed: 9,
        })
    };
    let t1 = t0 + 5 * SECOND;
    let mut again = fresh();
    again.resume_call(t1, rec.clone(), None);
    let out = sent(&mut again);
    let cancel = request(&out[0]);
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.headers.get("Via"), inv.headers.get("Via"));
    assert_eq!(message::cseq(&cancel.headers).unwrap(), (1, Method::Cancel));
    assert_eq!(cancel.uri, inv.uri);
    again
        .handle_bytes(t1, &Response::to(cancel, 200, "OK", None).encode())
        .unwrap();
    reply(&mut again, t1, &inv, 487);
    let out = sent(&mut again);
    assert_eq!(request(&out[0]).method, Method::Ack);
    assert!(ended(&events(&mut again)).is_some());

    // Answered after all, to an INVITE retried with another branch.
    let mut again = fresh();
    again.resume_call(t1, rec, None);
    let _ = sent(&mut again);
    let mut retried = inv.clone();
    retried.headers.set(
        "Via",
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKretried;rport",
    );
    retried.headers.set("CSeq", "2 INVITE");
    again
        .handle_bytes(t1, &ok_from(&retried, "late", &[]).encode())
        .unwrap();
    let out = sent(&mut again);
    let methods: Vec<Method> = out.iter().map(|m| request(m).method.clone()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    assert_eq!(
        tag_of(request(&out[1]).headers.get("To").unwrap()),
        Some("late")
    );
}

/// In a dialog, requests go to its next hop (RFC 3261 12.2.1.1): the
/// first route of the set (the last Record-Route entry: the proxy nearest
/// us), else the Contact's address; a host name
/// keeps the provider the INVITE went to. The ACK of the 2xx goes there
/// too, the BYE and its retransmissions as well.
#[test]
fn dialog_requests_go_to_the_next_hop_of_the_route_set() {
    let cases: [(Option<&str>, &str, Option<&str>); 3] = [
        (
            Some("<sip:10.0.0.9:5070;lr>, <sip:10.0.0.8;lr>"),
            "<sip:callee@10.0.0.7:5080>",
            Some("10.0.0.8:5060"),
        ),
        (None, "<sip:callee@10.0.0.7:5080>", Some("10.0.0.7:5080")),
        (
            Some("<sip:edge.example.net;lr>"),
            "<sip:callee@10.0.0.7:5080>",
            None,
        ),
    ];
    for (rr, contact, want) in cases {
        let mut ep = endpoint(Transport::Udp);
        let t0 = Instant::now();
        let (id, inv) = start(&mut ep, t0, params());
        let mut ok = Response::to(&inv, 200, "OK", Some("peer"));
        ok.headers.push("Contact", contact);
        if let Some(rr) = rr {
            ok.headers.push("Record-Route", rr);
        }
        ep.handle_bytes(t0, &ok.encode()).unwrap();
        let want: Option<SocketAddr> = want.map(|w| w.parse().unwrap());
        let ack = ep.poll_transmit_to().expect("ACK");
        assert_eq!(ack.to, want, "ACK for {rr:?} {contact}");
        ep.hangup(t0 + SECOND, id);
        let bye = ep.poll_transmit_to().expect("BYE");
        assert!(String::from_utf8_lossy(&bye.bytes).starts_with("BYE "));
        assert_eq!(bye.to, want, "BYE for {rr:?} {contact}");
        // Its retransmission (timer E) too.
        ep.handle_timeout(t0 + SECOND + Timers::default().t1);
        let again = ep.poll_transmit_to().expect("BYE again");
        assert_eq!(again.to, want, "BYE retransmitted for {rr:?}");
    }
}

/// A CANCEL goes where the INVITE went, whatever a provisional response
/// says.
#[test]
fn a_cancel_goes_where_its_invite_went() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    p.destinations = vec!["127.0.0.1:5099".parse().unwrap()];
    let id = ep.start_call(t0, p);
    let inv = ep.poll_transmit_to().expect("INVITE");
    let inv_req = match message::parse(&inv.bytes, false).unwrap().0 {
        Message::Request(r) => r,
        _ => panic!(),
    };
    let mut ringing = Response::to(&inv_req, 180, "Ringing", Some("peer"));
    ringing
        .headers
        .push("Contact", "<sip:callee@10.0.0.7:5080>");
    ringing.headers.push("Record-Route", "<sip:10.0.0.9;lr>");
    ep.handle_bytes(t0, &ringing.encode()).unwrap();
    ep.hangup(t0 + SECOND, id);
    let cancel = ep.poll_transmit_to().expect("CANCEL");
    assert!(String::from_utf8_lossy(&cancel.bytes).starts_with("CANCEL "));
    assert_eq!(cancel.to, Some("127.0.0.1:5099".parse().unwrap()));
}

/// What the endpoint sends, with each message's destination.
fn sent_to(ep: &mut Endpoint) -> Vec<(Option<SocketAddr>, Message)> {
    std::iter::from_fn(|| ep.poll_transmit_to())
        .map(|t| (t.to, message::parse(&t.bytes, false).expect("valid SIP").0))
        .collect()
}

/// An ended call with nothing in flight lingers as a small record that
/// still answers as the call did: the 2xx again gets the same ACK at the
/// same next hop, the peer's BYE again the same 200, a stranger 481; a
/// new answer (a late fork) brings the call back to ACK it and hang it
/// up, its BYE retransmitted until answered; 64*T1 after the end it is
/// all forgotten.
#[test]
fn an_ended_call_answers_from_its_record_and_a_late_fork_is_still_hung_up() {
    let hop: SocketAddr = "127.0.0.1:5099".parse().unwrap();
    let (mut ep, t0, inv) = answered(
        Transport::Udp,
        &[("Record-Route", "<sip:127.0.0.1:5099;lr>")],
    );
    let ok = ok_from(&inv, "peer", &[("Record-Route", "<sip:127.0.0.1:5099;lr>")]);
    ep.handle_bytes(t0, &ok.encode()).unwrap();
    let ack = sent_to(&mut ep);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].0, Some(hop));
    let bye = from_peer(&inv, Method::Bye, 1);
    ep.handle_bytes(t0 + SECOND, &bye.encode()).unwrap();
    let bye_ok = sent_to(&mut ep);
    assert_eq!(response(&bye_ok[0].1).code, 200);
    assert!(ended(&events(&mut ep)).is_some());
    assert_eq!((ep.calls.len(), ep.ended.len()), (0, 1), "settled");

    ep.handle_bytes(t0 + 2 * SECOND, &ok.encode()).unwrap();
    assert_eq!(sent_to(&mut ep), ack, "the same ACK, same hop");
    ep.handle_bytes(t0 + 2 * SECOND, &bye.encode()).unwrap();
    assert_eq!(sent_to(&mut ep), bye_ok, "the same 200");
    let mut stranger = from_peer(&inv, Method::Bye, 2);
    stranger
        .headers
        .set("From", "<sip:callee@127.0.0.1>;tag=someone");
    ep.handle_bytes(t0 + 2 * SECOND, &stranger.encode())
        .unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 481);
    let options = from_peer(&inv, Method::Options, 3);
    ep.handle_bytes(t0 + 2 * SECOND, &options.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    assert!(events(&mut ep).is_empty());

    // Another fork answers late: ACKed and hung up by the call, back.
    let late = ok_from(&inv, "late", &[]);
    let t = t0 + 3 * SECOND;
    ep.handle_bytes(t, &late.encode()).unwrap();
    let out = sent(&mut ep);
    let methods: Vec<Method> = out.iter().map(|m| request(m).method.clone()).collect();
    assert_eq!(methods, vec![Method::Ack, Method::Bye]);
    let fork_bye = request(&out[1]).clone();
    assert_eq!(tag_of(fork_bye.headers.get("To").unwrap()), Some("late"));
    assert_eq!(
        tag_of(fork_bye.headers.get("From").unwrap()),
        tag_of(inv.headers.get("From").unwrap())
    );
    assert_eq!(fork_bye.headers.get("Call-ID"), inv.headers.get("Call-ID"));
    assert_eq!(ep.calls.len(), 1, "brought back");
    let again = run_until(&mut ep, t + SECOND);
    assert!(
        again
            .iter()
            .any(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Bye)),
        "the fork's BYE is retransmitted: {again:?}"
    );
    ep.handle_bytes(
        t + SECOND,
        &Response::to(&fork_bye, 200, "OK", None).encode(),
    )
    .unwrap();
    assert_eq!((ep.calls.len(), ep.ended.len()), (0, 1), "settled again");
    ep.handle_bytes(t + SECOND, &late.encode()).unwrap();
    let fork_ack = sent(&mut ep);
    assert_eq!(fork_ack, vec![out[0].clone()], "the fork's ACK again");
    assert!(events(&mut ep).is_empty(), "no second end");

    let _ = run_until(&mut ep, t0 + 40 * SECOND);
    assert!(ep.ended.is_empty() && ep.by_call_id.is_empty());
    assert!(ep.poll_timeout().is_none());
    let stray = ep.stats().stray;
    ep.handle_bytes(t0 + 41 * SECOND, &ok.encode()).unwrap();
    assert!(sent(&mut ep).is_empty());
    assert_eq!(ep.stats().stray, stray + 1);
}

/// A call that ended on a final non-2xx settles at once; the response
/// again gets the same ACK in the INVITE's transaction.
#[test]
fn a_rejected_call_settles_and_acks_the_retransmitted_rejection() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 486);
    let ack = sent(&mut ep);
    assert_eq!(request(&ack[0]).method, Method::Ack);
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Busy);
    assert_eq!(ep.ended.len(), 1);
    reply(&mut ep, t0 + SECOND, &inv, 486);
    assert_eq!(sent(&mut ep), ack);
    reply(&mut ep, t0 + SECOND, &inv, 180);
    assert!(sent(&mut ep).is_empty());
    assert!(events(&mut ep).is_empty());
}

/// A call with credentials whose INVITE a proxy challenged (407, nonce
/// `n1`): see [`challenged`].
fn proxy_challenged() -> (Endpoint, Instant, Response, Vec<Message>) {
    challenged(
        407,
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"n1\", qop=\"auth\"",
    )
}

/// The INVITE was challenged and sent again with credentials; the first
/// INVITE's challenge retransmitted gets the ACK it had; the second
/// INVITE timed out, and its late final response gets an ACK of its own
/// (its branch and CSeq), not the first INVITE's stored ACK.
#[test]
fn a_late_final_to_a_retried_invite_gets_its_own_ack() {
    let (mut ep, t0, challenge, out) = proxy_challenged();
    let first_ack = out[0].clone();
    let inv2 = request(&out[1]).clone();
    // The first INVITE's challenge again (our ACK was lost): its own ACK.
    ep.handle_bytes(t0 + SECOND, &challenge.encode()).unwrap();
    assert_eq!(sent(&mut ep), vec![first_ack]);
    let _ = run_until(&mut ep, t0 + 40 * SECOND);
    assert_eq!(ended(&events(&mut ep)).unwrap().outcome, Outcome::Timeout);
    // The late final response to the second INVITE.
    reply(&mut ep, t0 + 40 * SECOND, &inv2, 487);
    let late = sent(&mut ep);
    assert_eq!(late.len(), 1);
    let ack = request(&late[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(message::cseq(&ack.headers).unwrap(), (2, Method::Ack));
    assert_eq!(top_branch(&ack.headers), top_branch(&inv2.headers));
    // Again: the same ACK, now from the lingering record.
    reply(&mut ep, t0 + 41 * SECOND, &inv2, 487);
    assert_eq!(sent(&mut ep), late);
    assert_eq!(ep.ended.len(), 1);
}

/// A late fork brought back from the lingering record and challenged on
/// its BYE answers with the nonce count going on from the INVITE's (a
/// proxy counting nonces would take a repeated count for a replay).
#[test]
fn a_challenged_fork_bye_after_the_end_goes_on_with_the_nonce_count() {
    let (mut ep, t0, _, out) = proxy_challenged();
    let inv2 = request(&out[1]).clone();
    ep.handle_bytes(t0, &ok_from(&inv2, "peer", &[]).encode())
        .unwrap();
    let _ = sent(&mut ep);
    let bye = from_peer(&inv2, Method::Bye, 1);
    ep.handle_bytes(t0 + SECOND, &bye.encode()).unwrap();
    let _ = sent(&mut ep);
    let _ = events(&mut ep);
    assert_eq!(ep.ended.len(), 1, "settled");
    ep.handle_bytes(t0 + 2 * SECOND, &ok_from(&inv2, "late", &[]).encode())
        .unwrap();
    let out = sent(&mut ep);
    let fork_bye = request(&out[1]).clone();
    assert_eq!(fork_bye.method, Method::Bye);
    let mut again = Response::to(&fork_bye, 407, "Proxy Authentication Required", None);
    again.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"n1\", qop=\"auth\"",
    );
    ep.handle_bytes(t0 + 2 * SECOND, &again.encode()).unwrap();
    let retried = sent(&mut ep);
    let q = request(&retried[0]);
    assert_eq!(q.method, Method::Bye);
    let auth = q.headers.get("Proxy-Authorization").unwrap();
    assert!(auth.contains("nc=00000002"), "{auth}");
}

/// The first destination stays silent, the INVITE fails over to the
/// second, which rings; then the first answers after all. The call is the
/// first's (ACKed there); the INVITE ringing at the second is cancelled,
/// and its 487 (ACKed) does not end the call. When the second had not
/// yet answered anything, the CANCEL waits for its first provisional
/// response (RFC 3261 9.1); its busy does not end the call either.
/// RFC 3261 17.1.1.3: a destination failed over from that ends its
/// INVITE late (486) gets its ACK, in its own transaction (its branch and
/// CSeq) and at its address; the call to the next destination goes on.
#[test]
fn a_late_rejection_from_a_destination_failed_over_from_is_acked_there() {
    let a: SocketAddr = "127.0.0.1:5101".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:5102".parse().unwrap();
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    p.destinations = vec![a, b];
    ep.start_call(t0, p);
    let inv_a = request(&sent_to(&mut ep)[0].1).clone();
    let t1 = t0 + FAILOVER_SILENCE + Duration::from_millis(1);
    ep.handle_timeout(t1);
    let inv_b = sent_to(&mut ep)
        .into_iter()
        .find(|(to, _)| *to == Some(b))
        .map(|(_, m)| request(&m).clone())
        .expect("INVITE to b");
    reply(&mut ep, t1, &inv_b, 180);
    let _ = sent_to(&mut ep);
    reply(&mut ep, t1 + SECOND, &inv_a, 486);
    let out = sent_to(&mut ep);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].0, Some(a));
    let ack = request(&out[0].1);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(top_branch(&ack.headers), top_branch(&inv_a.headers));
    assert_eq!(message::cseq(&ack.headers).unwrap(), (1, Method::Ack));
    assert_eq!(ack.uri, inv_a.uri);
    assert!(ended(&events(&mut ep)).is_none(), "the call to b goes on");
}

#[test]
fn a_late_answer_from_a_destination_failed_over_from_keeps_the_call_and_cancels_the_other() {
    let a: SocketAddr = "127.0.0.1:5101".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:5102".parse().unwrap();
    for b_rang_first in [true, false] {
        let mut ep = endpoint(Transport::Udp);
        let t0 = Instant::now();
        let mut p = params();
        p.destinations = vec![a, b];
        let id = ep.start_call(t0, p);
        let first = sent_to(&mut ep);
        assert_eq!(first[0].0, Some(a));
        let inv_a = request(&first[0].1).clone();
        // Silence from a: the INVITE goes to b as a new transaction.
        let t1 = t0 + FAILOVER_SILENCE + Duration::from_millis(1);
        ep.handle_timeout(t1);
        let inv_b = sent_to(&mut ep)
            .into_iter()
            .find(|(to, m)| {
                *to == Some(b) && matches!(m, Message::Request(r) if r.method == Method::Invite)
            })
            .map(|(_, m)| request(&m).clone())
            .expect("INVITE to b");
        assert_ne!(top_branch(&inv_a.headers), top_branch(&inv_b.headers));
        if b_rang_first {
            reply(&mut ep, t1, &inv_b, 180);
            sent_to(&mut ep);
        }
        // a answers after all.
        let t2 = t1 + SECOND;
        reply(&mut ep, t2, &inv_a, 200);
        let out = sent_to(&mut ep);
        let evs = events(&mut ep);
        assert!(
            evs.iter().any(|e| matches!(e, CallEvent::Answered { .. })),
            "{evs:?}"
        );
        let ack = out
            .iter()
            .find(|(_, m)| matches!(m, Message::Request(r) if r.method == Method::Ack))
            .expect("ACK of a's 200");
        assert_eq!(
            message::cseq(&request(&ack.1).headers).unwrap().0,
            message::cseq(&inv_a.headers).unwrap().0
        );
        let cancels = |out: &[(Option<SocketAddr>, Message)]| -> Vec<Request> {
            out.iter()
                .filter(|(to, m)| {
                    *to == Some(b) && matches!(m, Message::Request(r) if r.method == Method::Cancel)
                })
                .map(|(_, m)| request(m).clone())
                .collect()
        };
        let t3 = t2 + SECOND;
        let cancel = if b_rang_first {
            cancels(&out)
        } else {
            assert!(
                cancels(&out).is_empty(),
                "no CANCEL before b answers anything"
            );
            reply(&mut ep, t3, &inv_b, 180);
            cancels(&sent_to(&mut ep))
        };
        assert_eq!(cancel.len(), 1, "one CANCEL of the INVITE at b");
        assert_eq!(top_branch(&cancel[0].headers), top_branch(&inv_b.headers));
        assert_eq!(
            message::cseq(&cancel[0].headers).unwrap().0,
            message::cseq(&inv_b.headers).unwrap().0
        );
        // b's end: 487 after the CANCEL (or a busy); ACKed, the call goes on.
        let code = if b_rang_first { 487 } else { 486 };
        reply(&mut ep, t3 + SECOND, &inv_b, code);
        let out = sent_to(&mut ep);
        assert!(
            out.iter().any(|(to, m)| *to == Some(b)
                && matches!(m, Message::Request(r) if r.method == Method::Ack)),
            "b's {code} is ACKed"
        );
        assert!(ended(&events(&mut ep)).is_none(), "b's {code} ends nothing");
        // The call is still a's: our hang-up is a BYE in a's dialog.
        ep.hangup(t3 + 2 * SECOND, id);
        let bye = sent_to(&mut ep)
            .into_iter()
            .find(|(_, m)| matches!(m, Message::Request(r) if r.method == Method::Bye))
            .expect("BYE");
        assert_eq!(
            request(&bye.1).headers.get("To").and_then(tag_of),
            Some("peer")
        );
    }
}

/// Requests in the dialog from the peer, RFC 3261 style: an extension we do
/// not support is refused with 420, a body we cannot read with 415, an
/// OPTIONS takes its turn in the CSeq order, and an accepted re-INVITE's
/// Contact becomes the target of our BYE (a target refresh, 12.2.2); a
/// 481 to a request with no To tag gets one (8.2.6.2).
#[test]
fn in_dialog_requests_keep_the_rules_and_a_re_invite_refreshes_the_target() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (id, inv) = start(&mut ep, t0, params());
    ep.handle_bytes(t0, &ok_from(&inv, "peer", &[]).encode())
        .unwrap();
    let _ = sent(&mut ep);
    let _ = events(&mut ep);
    let sdp = b"v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\n".to_vec();

    let mut ext = from_peer(&inv, Method::Invite, 2);
    ext.headers.push("Require", "foo-ext");
    ext.headers.push("Content-Type", "application/sdp");
    ext.body = sdp.clone();
    ep.handle_bytes(t0 + SECOND, &ext.encode()).unwrap();
    let r = response(&sent(&mut ep)[0]).clone();
    assert_eq!(r.code, 420);
    assert_eq!(r.headers.get("Unsupported"), Some("foo-ext"));

    let mut foo = from_peer(&inv, Method::Update, 3);
    foo.headers.push("Content-Type", "application/foo");
    foo.body = b"hello".to_vec();
    ep.handle_bytes(t0 + SECOND, &foo.encode()).unwrap();
    let r = response(&sent(&mut ep)[0]).clone();
    assert_eq!(r.code, 415);
    assert_eq!(r.headers.get("Accept"), Some("application/sdp"));

    ep.handle_bytes(t0 + SECOND, &from_peer(&inv, Method::Options, 10).encode())
        .unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    let mut old = from_peer(&inv, Method::Invite, 4);
    old.headers.push("Content-Type", "application/sdp");
    old.body = sdp.clone();
    ep.handle_bytes(t0 + SECOND, &old.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 500, "CSeq 4 after 10");
    // CSeq 10 again with another method: not the OPTIONS' retransmission
    // but a request that did not count up: 500, the call stays; the
    // OPTIONS' own retransmission still gets its 200.
    ep.handle_bytes(t0 + SECOND, &from_peer(&inv, Method::Bye, 10).encode())
        .unwrap();
    assert_eq!(
        response(&sent(&mut ep)[0]).code,
        500,
        "a BYE reusing CSeq 10"
    );
    ep.handle_bytes(t0 + SECOND, &from_peer(&inv, Method::Options, 10).encode())
        .unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200, "the OPTIONS again");

    let mut moved = from_peer(&inv, Method::Invite, 11);
    moved.headers.push("Contact", "<sip:moved@127.0.0.1:5099>");
    moved.headers.push("Content-Type", "application/sdp");
    moved.body = sdp;
    ep.handle_bytes(t0 + 2 * SECOND, &moved.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    ep.handle_bytes(t0 + 2 * SECOND, &from_peer(&inv, Method::Ack, 11).encode())
        .unwrap();
    let _ = events(&mut ep);

    let mut stray = from_peer(&inv, Method::Bye, 12);
    stray.headers.set("Call-ID", "not-this-call");
    stray.headers.set("To", "<sip:dialler@127.0.0.1>");
    ep.handle_bytes(t0 + 3 * SECOND, &stray.encode()).unwrap();
    let r = response(&sent(&mut ep)[0]).clone();
    assert_eq!(r.code, 481);
    assert!(tag_of(r.headers.get("To").unwrap()).is_some(), "{r:?}");

    ep.hangup(t0 + 3 * SECOND, id);
    let bye = request(&sent(&mut ep)[0]).clone();
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(bye.uri, "sip:moved@127.0.0.1:5099");
}

/// A BYE challenged by a proxy (407) and then by the far end (401, another
/// realm) answers both, the first answer kept (RFC 3261 22.2, 22.3); the
/// same challenge again means the credentials are refused, and it stops.
#[test]
fn a_bye_challenged_in_two_realms_answers_both_and_not_a_third_time() {
    let (mut ep, t0, bye) = hanging_up_with_credentials(SECOND);
    let mut proxy = Response::to(&bye, 407, "Proxy Authentication Required", None);
    proxy.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"proxy.test\", nonce=\"n1\"",
    );
    ep.handle_bytes(t0 + SECOND, &proxy.encode()).unwrap();
    let bye2 = request(&sent(&mut ep)[0]).clone();
    assert!(bye2.headers.get("Proxy-Authorization").is_some());
    let mut uas = Response::to(&bye2, 401, "Unauthorized", None);
    uas.headers.push(
        "WWW-Authenticate",
        "Digest realm=\"uas.test\", nonce=\"n2\"",
    );
    ep.handle_bytes(t0 + SECOND, &uas.encode()).unwrap();
    let bye3 = request(&sent(&mut ep)[0]).clone();
    assert_eq!(bye3.method, Method::Bye);
    assert!(bye3.headers.get("Proxy-Authorization").is_some(), "kept");
    assert!(bye3.headers.get("Authorization").is_some());
    let mut again = Response::to(&bye3, 401, "Unauthorized", None);
    again.headers.push(
        "WWW-Authenticate",
        "Digest realm=\"uas.test\", nonce=\"n3\"",
    );
    ep.handle_bytes(t0 + SECOND, &again.encode()).unwrap();
    assert!(
        sent(&mut ep)
            .iter()
            .all(|m| !matches!(m, Message::Request(q) if q.method == Method::Bye)),
        "no third BYE"
    );
}

/// A response carrying a second Via was meant for a proxy on its way
/// (RFC 3261 8.1.3.3): dropped, not taken for the call's.
#[test]
fn a_response_with_two_vias_is_dropped() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    let mut r = Response::to(&inv, 486, "Busy Here", Some("x"));
    r.headers
        .push("Via", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKother");
    ep.handle_bytes(t0, &r.encode()).unwrap();
    assert!(sent(&mut ep).is_empty(), "no ACK");
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.stats().stray, 1);
    assert_eq!(ep.live_calls(), 1);
}

#[test]
fn over_udp_a_response_goes_where_the_requests_via_says() {
    let from: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let (_, inv) = start(&mut ep, t0, params());
    reply(&mut ep, t0, &inv, 200);
    let _ = sent(&mut ep);
    let bye_via = |via: &str| {
        let mut bye = Request::new(Method::Bye, "sip:dialler@127.0.0.1:5070");
        bye.headers.push("Via", via);
        bye.headers.push("From", "<sip:callee@127.0.0.1>;tag=peer");
        bye.headers.push("To", inv.headers.get("From").unwrap());
        bye.headers
            .push("Call-ID", inv.headers.get("Call-ID").unwrap());
        bye.headers.push("CSeq", "1 BYE");
        bye.encode()
    };
    // Every copy sent: the same response, and where each went.
    let answer = |ep: &mut Endpoint| {
        let sent: Vec<Transmit> = std::iter::from_fn(|| ep.poll_transmit_to()).collect();
        assert!(!sent.is_empty(), "no response");
        assert!(sent.iter().all(|t| t.bytes == sent[0].bytes));
        let (m, _) = message::parse(&sent[0].bytes, false).unwrap();
        let Message::Response(r) = m else {
            panic!("not a response")
        };
        let mut to: Vec<Option<SocketAddr>> = sent.iter().map(|t| t.to).collect();
        to.sort();
        (to, r)
    };
    let at = |a: &str| Some(a.parse::<SocketAddr>().unwrap());
    // RFC 3261 18.2.2: no rport, so the sent-by port; and the source port,
    // for a peer behind NAT that did not ask for rport.
    ep.handle_bytes_from(
        t0 + SECOND,
        Some(from),
        &bye_via("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye1"),
    )
    .unwrap();
    let (to, r) = answer(&mut ep);
    assert_eq!(
        (r.code, to),
        (200, vec![at("127.0.0.1:5080"), at("127.0.0.1:6000")])
    );
    // The sent-by host is the source: no `received` is added.
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKbye1")
    );

    // Out of any dialog: a sent-by naming another host and no port gets
    // `received` and goes to the source address on 5060.
    let mut opts = Request::new(Method::Options, "sip:dialler@127.0.0.1:5070");
    opts.headers
        .push("Via", "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKo1");
    opts.headers.push("From", "<sip:p@example.net>;tag=o");
    opts.headers.push("To", "<sip:dialler@127.0.0.1>");
    opts.headers.push("Call-ID", "options-1");
    opts.headers.push("CSeq", "7 OPTIONS");
    ep.handle_bytes_from(t0 + SECOND, Some(from), &opts.encode())
        .unwrap();
    let (to, r) = answer(&mut ep);
    assert_eq!(
        (r.code, to),
        (200, vec![at("127.0.0.1:5060"), at("127.0.0.1:6000")])
    );
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP/2.0/UDP proxy.example.net;branch=z9hG4bKo1;received=127.0.0.1")
    );

    // RFC 3581: with rport, back to the source port only, both filled in.
    opts.headers.set(
        "Via",
        "SIP/2.0/UDP 192.0.2.7:5090;rport;branch=z9hG4bKo2, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx",
    );
    ep.handle_bytes_from(t0 + SECOND, Some(from), &opts.encode())
        .unwrap();
    let (to, r) = answer(&mut ep);
    assert_eq!(to, vec![Some(from)]);
    assert_eq!(
        r.headers.get("Via"),
        Some(
            "SIP/2.0/UDP 192.0.2.7:5090;branch=z9hG4bKo2;received=127.0.0.1;rport=6000, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx"
        )
    );
}

#[test]
fn over_tcp_a_response_goes_back_on_the_connection_it_came_on() {
    let from: SocketAddr = "127.0.0.1:6000".parse().unwrap();
    let mut ep = endpoint(Transport::Tcp);
    let mut opts = Request::new(Method::Options, "sip:dialler@127.0.0.1:5070");
    opts.headers
        .push("Via", "SIP/2.0/TCP 127.0.0.1:5080;branch=z9hG4bKt1");
    opts.headers.push("From", "<sip:p@example.net>;tag=o");
    opts.headers.push("To", "<sip:dialler@127.0.0.1>");
    opts.headers.push("Call-ID", "options-tcp");
    opts.headers.push("CSeq", "7 OPTIONS");
    ep.handle_bytes_from(Instant::now(), Some(from), &opts.encode())
        .unwrap();
    let t = ep.poll_transmit_to().expect("a response");
    assert_eq!(t.to, Some(from));
    assert!(ep.poll_transmit_to().is_none(), "one copy");
}

/// RFC 3261 13.2.2.4: the ACK of a 2xx carries the same credentials as
/// its INVITE (an edge that checks every request would otherwise drop it,
/// repeat its 200 and end the call at timer H).
#[test]
fn the_ack_of_a_2xx_carries_the_invites_credentials() {
    let (mut ep, t0, _, out) = proxy_challenged();
    let inv2 = request(&out[1]).clone();
    let creds = inv2.headers.get("Proxy-Authorization").unwrap().to_string();
    // The ACK of the 407 (the first INVITE had none) carries none.
    assert!(
        request(&out[0])
            .headers
            .get("Proxy-Authorization")
            .is_none()
    );
    ep.handle_bytes(t0, &ok_from(&inv2, "peer", &[]).encode())
        .unwrap();
    let acks = sent(&mut ep);
    let ack = request(&acks[0]);
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.headers.get("Proxy-Authorization"), Some(creds.as_str()));
    // A second answer (another fork) is ACKed with them too, then hung up.
    ep.handle_bytes(t0, &ok_from(&inv2, "fork", &[]).encode())
        .unwrap();
    let fork = sent(&mut ep);
    let fork_ack = request(&fork[0]);
    assert_eq!(fork_ack.method, Method::Ack);
    assert_eq!(
        fork_ack.headers.get("Proxy-Authorization"),
        Some(creds.as_str())
    );
    assert_eq!(request(&fork[1]).method, Method::Bye);
}

/// RFC 7616 3.4: the nonce count starts at 1 for each new nonce; a 401
/// listing an algorithm we cannot use first is answered with the topmost
/// one we can (RFC 8760 2.4).
#[test]
fn a_fresh_nonce_counts_from_one_and_the_topmost_usable_challenge_is_answered() {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let p = params_with_credentials();
    let (id, inv) = start(&mut ep, t0, p);
    let mut proxy = Response::to(&inv, 407, "Proxy Authentication Required", Some("px"));
    proxy.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"n1\", qop=\"auth\"",
    );
    ep.handle_bytes(t0, &proxy.encode()).unwrap();
    let out = sent(&mut ep);
    let inv2 = request(&out[1]).clone();
    assert!(
        inv2.headers
            .get("Proxy-Authorization")
            .unwrap()
            .contains("nc=00000001")
    );
    ep.handle_bytes(t0, &ok_from(&inv2, "peer", &[]).encode())
        .unwrap();
    let _ = sent(&mut ep);
    let _ = events(&mut ep);
    ep.hangup(t0 + SECOND, id);
    let bye = request(&sent(&mut ep)[0]).clone();
    assert_eq!(bye.method, Method::Bye);
    let mut challenge = Response::to(&bye, 401, "Unauthorized", None);
    challenge.headers.push(
        "WWW-Authenticate",
        "Digest realm=\"far\", nonce=\"n9\", qop=\"auth\", algorithm=SHA-512-256",
    );
    challenge.headers.push(
        "WWW-Authenticate",
        "Digest realm=\"far\", nonce=\"n2\", qop=\"auth\", algorithm=SHA-256",
    );
    ep.handle_bytes(t0 + SECOND, &challenge.encode()).unwrap();
    let again = sent(&mut ep);
    let q = request(&again[0]);
    assert_eq!(q.method, Method::Bye);
    let auth = q.headers.get("Authorization").unwrap();
    assert!(auth.contains("nonce=\"n2\""), "{auth}");
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    assert!(
        auth.contains("nc=00000001"),
        "a new nonce counts from 1: {auth}"
    );
}

/// RFC 3261 17.1.1.2: a provisional response to our refresh re-INVITE
/// ends its retransmissions.
#[test]
fn a_provisional_response_stops_a_refresh_re_invites_retransmissions() {
    let (mut ep, t0, _) = answered(Transport::Udp, &[("Session-Expires", "120;refresher=uac")]);
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    let reinvite = request(&out[0].1).clone();
    assert_eq!(reinvite.method, Method::Invite);
    ep.handle_bytes(
        t0 + 60 * SECOND + SECOND / 5,
        &Response::to(&reinvite, 100, "Trying", None).encode(),
    )
    .unwrap();
    let later = run_until(&mut ep, t0 + 70 * SECOND);
    assert!(
        !later
            .iter()
            .any(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Invite)),
        "no INVITE resent after its 100: {later:?}"
    );
    ep.handle_bytes(t0 + 70 * SECOND, &ok_from(&reinvite, "peer", &[]).encode())
        .unwrap();
    let acked = sent(&mut ep);
    assert_eq!(request(&acked[0]).method, Method::Ack);
}

/// The origin's version of an SDP body.
fn sdp_version(body: &[u8]) -> u64 {
    String::from_utf8_lossy(body)
        .lines()
        .find(|l| l.starts_with("o="))
        .and_then(|l| l.split(' ').nth(2))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
}

/// RFC 3261 14.2 and RFC 3264 5, 8: an offerless re-INVITE (a B2BUA
/// moving the media after a transfer) gets our offer in the 200, with a
/// new origin version when it differs from the last description sent
/// (here after a hold), and the answer in the ACK moves the media.
#[test]
fn an_offerless_re_invite_gets_an_offer_and_the_acks_answer_moves_the_media() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut hold = from_peer(&inv, Method::Invite, 2);
    hold.headers.push("Content-Type", "application/sdp");
    hold.body = HOLD.to_vec();
    ep.handle_bytes(t0 + SECOND, &hold.encode()).unwrap();
    let held = response(&sent(&mut ep)[0]).clone();
    ep.handle_bytes(t0 + SECOND, &from_peer(&inv, Method::Ack, 2).encode())
        .unwrap();
    let _ = events(&mut ep);
    let bare = from_peer(&inv, Method::Invite, 3);
    ep.handle_bytes(t0 + 2 * SECOND, &bare.encode()).unwrap();
    let ok = response(&sent(&mut ep)[0]).clone();
    assert_eq!(ok.code, 200);
    let offer = String::from_utf8(ok.body.clone()).unwrap();
    assert!(offer.contains("a=sendrecv"), "{offer}");
    assert_eq!(
        sdp_version(&ok.body),
        sdp_version(&held.body) + 1,
        "{offer}"
    );
    assert!(
        events(&mut ep).is_empty(),
        "nothing moves before the answer"
    );
    let mut ack = from_peer(&inv, Method::Ack, 3);
    ack.headers.push("Content-Type", "application/sdp");
    ack.body = b"v=0\r\no=peer 1 3 IN IP4 192.0.2.99\r\ns=-\r\nc=IN IP4 192.0.2.99\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n".to_vec();
    ep.handle_bytes(t0 + 2 * SECOND, &ack.encode()).unwrap();
    let evs = events(&mut ep);
    assert!(
        matches!(&evs[..], [CallEvent::MediaChanged { media }] if media.addr == "192.0.2.99:7000".parse().unwrap()),
        "{evs:?}"
    );
    // The same offer again (nothing changed since): the same version.
    let again = from_peer(&inv, Method::Invite, 4);
    ep.handle_bytes(t0 + 3 * SECOND, &again.encode()).unwrap();
    let ok2 = response(&sent(&mut ep)[0]).clone();
    assert_eq!(sdp_version(&ok2.body), sdp_version(&ok.body));
}

/// Glare (RFC 3261 14.1, 14.2): the peer's re-INVITE while our refresh
/// re-INVITE is out gets 491; a 491 to ours sends it again after 2.1 to
/// 4 s, not at the next half interval (the peer would call the session
/// dead first).
#[test]
fn re_invites_that_cross_get_491_and_ours_is_sent_again_soon() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[("Session-Expires", "120;refresher=uac")]);
    let out = run_until(&mut ep, t0 + 60 * SECOND);
    let ours = request(&out[0].1).clone();
    assert_eq!(ours.method, Method::Invite);
    let mut theirs = from_peer(&inv, Method::Invite, 2);
    theirs.headers.push("Content-Type", "application/sdp");
    theirs.body = HOLD.to_vec();
    ep.handle_bytes(t0 + 60 * SECOND, &theirs.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 491);
    assert!(events(&mut ep).is_empty(), "their offer is not taken");
    ep.handle_bytes(
        t0 + 60 * SECOND,
        &Response::to(&ours, 491, "Request Pending", None).encode(),
    )
    .unwrap();
    let acked = sent(&mut ep);
    assert_eq!(request(&acked[0]).method, Method::Ack, "the 491 is ACKed");
    let later = run_until(&mut ep, t0 + 65 * SECOND);
    let resent: Vec<Instant> = later
        .iter()
        .filter(|(_, m)| matches!(m, Message::Request(q) if q.method == Method::Invite))
        .map(|(t, _)| *t)
        .collect();
    let first = resent.first().copied().expect("sent again");
    assert!(
        first >= t0 + 60 * SECOND + Duration::from_millis(2_100) && first <= t0 + 64 * SECOND,
        "{:?}",
        first - t0
    );
    let again = later
        .iter()
        .find_map(|(_, m)| match m {
            Message::Request(q) if q.method == Method::Invite => Some(q.clone()),
            _ => None,
        })
        .unwrap();
    assert!(message::cseq(&again.headers).unwrap().0 > message::cseq(&ours.headers).unwrap().0);
}

/// RFC 3261 9.2: a CANCEL of the peer's re-INVITE, which was answered
/// already, is itself answered 200 and changes nothing.
#[test]
fn a_cancel_of_an_answered_re_invite_gets_200() {
    let (mut ep, t0, inv) = answered(Transport::Udp, &[]);
    let mut hold = from_peer(&inv, Method::Invite, 2);
    hold.headers.push("Content-Type", "application/sdp");
    hold.body = HOLD.to_vec();
    ep.handle_bytes(t0 + SECOND, &hold.encode()).unwrap();
    assert_eq!(response(&sent(&mut ep)[0]).code, 200);
    let _ = events(&mut ep);
    let mut cancel = from_peer(&inv, Method::Cancel, 2);
    cancel
        .headers
        .set("Via", hold.headers.get("Via").unwrap().to_string());
    ep.handle_bytes(t0 + SECOND, &cancel.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1, "{out:?}");
    let r = response(&out[0]);
    assert_eq!(r.code, 200);
    assert_eq!(message::cseq(&r.headers).unwrap(), (2, Method::Cancel));
    assert!(events(&mut ep).is_empty());
    assert_eq!(ep.live_calls(), 1);
}

/// RFC 7616 3.3: an INVITE whose credentials come back challenged with
/// `stale=true` is answered once more with the new nonce; challenged again
/// without it, the call fails (the credentials are refused).
#[test]
fn a_stale_nonce_is_answered_once_more_on_the_invite() {
    let (mut ep, t0, _, out) = proxy_challenged();
    let inv2 = request(&out[1]).clone();
    let mut stale = Response::to(&inv2, 407, "Proxy Authentication Required", Some("px"));
    stale.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"n2\", qop=\"auth\", stale=true",
    );
    ep.handle_bytes(t0, &stale.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 2, "ACK and a third INVITE");
    let inv3 = request(&out[1]).clone();
    assert_eq!(inv3.method, Method::Invite);
    let auth = inv3.headers.get("Proxy-Authorization").unwrap();
    assert!(
        auth.contains("nonce=\"n2\"") && auth.contains("nc=00000001"),
        "{auth}"
    );
    assert_eq!(inv3.headers.get_all("Proxy-Authorization").count(), 1);
    let mut refused = Response::to(&inv3, 407, "Proxy Authentication Required", Some("px"));
    refused.headers.push(
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"n3\", qop=\"auth\"",
    );
    ep.handle_bytes(t0, &refused.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1, "only the ACK: {out:?}");
    let s = ended(&events(&mut ep)).cloned().unwrap();
    assert_eq!(s.outcome, Outcome::Failure);
}
