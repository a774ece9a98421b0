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
        target: "sip:+15551230000@127.0.0.1:5060".into(),
        from_user: "dialler".into(),
        ring_timeout: RingTimeout::new(Duration::from_secs(15)).unwrap(),
        credentials: None,
        media_addr: "127.0.0.1:40000".parse().unwrap(),
        max_talk: None,
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
            early_media: false
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
        // A retransmission of the final response is ACKed again, no new end.
        reply(&mut ep, t0 + 2 * SECOND, &inv, code);
        assert_eq!(sent(&mut ep).len(), 1);
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

fn challenged_call(second: u16) -> (Vec<Message>, Option<Summary>) {
    let mut ep = endpoint(Transport::Udp);
    let t0 = Instant::now();
    let mut p = params();
    p.credentials = Some(Credentials {
        username: "user".into(),
        password: "secret".into(),
    });
    let (_, inv) = start(&mut ep, t0, p);
    let mut challenge = Response::to(&inv, 401, "Unauthorized", Some("peer"));
    challenge.headers.push(
        "WWW-Authenticate",
        "Digest realm=\"sipp\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256",
    );
    ep.handle_bytes(t0, &challenge.encode()).unwrap();
    let out = sent(&mut ep);
    assert_eq!(out.len(), 2);
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
