//! Malformed and truncated SIP fed to the parser and to a live endpoint:
//! never a panic, always a clear error, and the call in progress goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use dialler::sip::message::{self, Message, Response};
use dialler::sip::uac::{CallEvent, CallParams, Endpoint, EndpointConfig, RingTimeout, Timers};
use dialler::sip::{SipError, Transport};
use proptest::prelude::*;

const SAMPLE: &str = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport\r\nFrom: <sip:d@127.0.0.1>;tag=a\r\nTo: <sip:b@127.0.0.1>;tag=b\r\nCall-ID: c@x\r\nCSeq: 1 INVITE\r\nContact: <sip:b@127.0.0.1:5060>\r\nContent-Type: application/sdp\r\nContent-Length: 52\r\n\r\nv=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 6000 RTP/AVP 0\r\n\r\n";

fn endpoint_with_a_call() -> (Endpoint, Instant, dialler::sip::message::Request) {
    let mut ep = Endpoint::new(EndpointConfig {
        local: "127.0.0.1:5070".parse().unwrap(),
        transport: Transport::Udp,
        timers: Timers::default(),
        seed: 1,
    });
    let now = Instant::now();
    ep.start_call(
        now,
        CallParams {
            ids: None,
            target: "sip:+15550001111@127.0.0.1:5060".into(),
            from_user: "d".into(),
            ring_timeout: RingTimeout::new(Duration::from_secs(15)).unwrap(),
            credentials: None,
            media_addr: "127.0.0.1:4000".parse().unwrap(),
            max_talk: None,
            display_name: None,
            extra_headers: Vec::new(),
            destinations: Vec::new(),
        },
    );
    let bytes = ep.poll_transmit().unwrap();
    let Ok((Message::Request(inv), _)) = message::parse(&bytes, false) else {
        panic!("our INVITE parses")
    };
    (ep, now, inv)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = message::parse(&bytes, true);
        let _ = message::parse(&bytes, false);
    }

    #[test]
    fn random_bytes_never_panic_the_rtp_or_sdp_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = dialler::media::rtp::Packet::parse(&bytes) {
            prop_assert!(p.payload.len() <= bytes.len() - 12);
        }
        let _ = dialler::sip::sdp::parse(&bytes);
        let _ = dialler::media::wav::read(&bytes);
    }

    #[test]
    fn truncated_messages_are_incomplete_on_a_stream(cut in 0usize..SAMPLE.len()) {
        let r = message::parse(&SAMPLE.as_bytes()[..cut], true);
        prop_assert_eq!(r.unwrap_err(), SipError::Incomplete);
    }

    #[test]
    fn mutated_messages_never_panic(pos in 0usize..SAMPLE.len(), byte in any::<u8>(), cut in 0usize..SAMPLE.len()) {
        let mut b = SAMPLE.as_bytes().to_vec();
        b[pos] = byte;
        let _ = message::parse(&b, false);
        let _ = message::parse(&b[..cut.max(1)], false);
        let _ = message::parse(&b, true);
    }

    #[test]
    fn garbage_and_mutated_responses_leave_the_call_running(
        junk in proptest::collection::vec(any::<u8>(), 0..300),
        pos in 0usize..200,
        byte in any::<u8>(),
    ) {
        let (mut ep, now, inv) = endpoint_with_a_call();
        let _ = ep.handle_bytes(now, &junk);
        // A real response with one byte changed: its header lines still
        // belong to our call most of the time.
        let mut real = Response::to(&inv, 183, "Session Progress", Some("p")).encode();
        let at = pos % real.len();
        real[at] = byte;
        let _ = ep.handle_bytes(now, &real);
        while ep.poll_transmit().is_some() {}
        // Whatever happened, a clean 200 is still taken: the call is
        // answered, unless the mutation itself made a final response that
        // ended it.
        let ok = Response::to(&inv, 200, "OK", Some("p")).encode();
        ep.handle_bytes(now, &ok).unwrap();
        let (mut answered, mut ended) = (false, false);
        while let Some((_, e)) = ep.poll_event() {
            answered |= matches!(e, CallEvent::Answered { .. });
            ended |= matches!(e, CallEvent::Ended(_));
        }
        prop_assert!(answered != ended, "answered {} ended {}", answered, ended);
    }
}

/// The call of [`endpoint_with_a_call`], answered by the callee tagged `p`.
fn answered_call() -> (Endpoint, Instant, dialler::sip::message::Request) {
    let (mut ep, now, inv) = endpoint_with_a_call();
    let mut ok = Response::to(&inv, 200, "OK", Some("p"));
    ok.headers.push("Contact", "<sip:callee@127.0.0.1:5060>");
    ep.handle_bytes(now, &ok.encode()).unwrap();
    while ep.poll_transmit().is_some() {}
    while ep.poll_event().is_some() {}
    (ep, now, inv)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Dialog attacks: requests with the call's Call-ID but any other
    /// pair of tags, any CSeq and any method get 481 (or 200 to OPTIONS)
    /// and never end or change the call (RFC 3261 12.2.2).
    #[test]
    fn requests_without_both_tags_never_touch_the_call(
        method in prop::sample::select(vec!["BYE", "INVITE", "UPDATE", "CANCEL", "INFO", "PRACK", "NOTIFY", "REFER"]),
        from_tag in prop::option::of("[a-z0-9]{1,8}"),
        to_tag in prop::option::of("[a-z0-9]{1,8}"),
        cseq in 0u32..100_000,
    ) {
        let (mut ep, now, inv) = answered_call();
        let ours = dialler::sip::message::tag_of(inv.headers.get("From").unwrap()).unwrap().to_string();
        // Skip the one pair that is the real dialog.
        prop_assume!(!(from_tag.as_deref() == Some("p") && to_tag.as_deref() == Some(ours.as_str())));
        let with_tag = |base: &str, tag: &Option<String>| match tag {
            Some(t) => format!("{base};tag={t}"),
            None => base.to_string(),
        };
        let text = format!(
            "{method} sip:d@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKatk{cseq}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            with_tag("<sip:attacker@10.9.9.9>", &from_tag),
            with_tag("<sip:d@127.0.0.1>", &to_tag),
            inv.headers.get("Call-ID").unwrap(),
        );
        ep.handle_bytes(now, text.as_bytes()).unwrap();
        let replies: Vec<u16> = std::iter::from_fn(|| ep.poll_transmit())
            .filter_map(|b| match message::parse(&b, false) {
                Ok((Message::Response(r), _)) => Some(r.code),
                _ => None,
            })
            .collect();
        prop_assert_eq!(replies, vec![481]);
        prop_assert!(ep.poll_event().is_none(), "the call was touched");
        prop_assert_eq!(ep.live_calls(), 1);
    }
}

/// Messages in the spirit of RFC 4475's torture tests that a UAC meets:
/// each is either taken (and leaves the call sound) or refused with a
/// clear error, never a panic or a wrong call state.
#[test]
fn torture_messages_are_taken_or_refused_cleanly() {
    let (_, _, inv) = endpoint_with_a_call();
    let call_id = inv.headers.get("Call-ID").unwrap().to_string();
    let from = inv.headers.get("From").unwrap().to_string();
    let via = inv.headers.get("Via").unwrap().to_string();
    let head = |status: &str, extra: &str| {
        format!(
            "{status}\r\nVia: {via}\r\nFrom: {from}\r\nTo: <sip:b@127.0.0.1>;tag=p\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}"
        )
    };
    // (message, parses?)
    let cases: Vec<(String, bool)> = vec![
        // Compact forms, odd spacing and case, folded lines, unknown headers.
        (
            format!(
                "SIP/2.0 180 Ringing\r\nv:  {via}\r\nf: {from}\r\nt:<sip:b@127.0.0.1>;tag=p\r\ni:{call_id}\r\nCSeq  :  1   INVITE\r\nX-Unknown: a,\r\n b,\r\n\tc\r\nl: 0\r\n\r\n"
            ),
            true,
        ),
        // A reason phrase with UTF-8 and an empty one.
        (
            head("SIP/2.0 183 Sitzung läuft", "Content-Length: 0\r\n\r\n"),
            true,
        ),
        (head("SIP/2.0 180 ", "Content-Length: 0\r\n\r\n"), true),
        // Status codes outside 100-699 and non-numeric.
        (head("SIP/2.0 700 Nope", "Content-Length: 0\r\n\r\n"), false),
        (head("SIP/2.0 099 Nope", "Content-Length: 0\r\n\r\n"), false),
        (head("SIP/2.0 2OO OK", "Content-Length: 0\r\n\r\n"), false),
        // A CSeq number over 2**32 and one without a method.
        (
            head("SIP/2.0 180 Ringing", "Content-Length: 0\r\n\r\n")
                .replace("CSeq: 1 INVITE", "CSeq: 36893488147419103232 INVITE"),
            false,
        ),
        (
            head("SIP/2.0 180 Ringing", "Content-Length: 0\r\n\r\n")
                .replace("CSeq: 1 INVITE", "CSeq: 1"),
            false,
        ),
        // Content-Length larger than the datagram, negative, and huge.
        (
            head("SIP/2.0 200 OK", "Content-Length: 500\r\n\r\nv=0\r\n"),
            false,
        ),
        (head("SIP/2.0 200 OK", "Content-Length: -5\r\n\r\n"), false),
        (
            head(
                "SIP/2.0 200 OK",
                "Content-Length: 99999999999999999999\r\n\r\n",
            ),
            false,
        ),
        // Missing mandatory headers.
        (
            head("SIP/2.0 180 Ringing", "Content-Length: 0\r\n\r\n")
                .replace(&format!("Call-ID: {call_id}\r\n"), ""),
            false,
        ),
        // A header line with no colon, and a NUL in a header name.
        (
            head(
                "SIP/2.0 180 Ringing",
                "Garbage line\r\nContent-Length: 0\r\n\r\n",
            ),
            false,
        ),
        (
            head(
                "SIP/2.0 180 Ringing",
                "X-\0Bad: 1\r\nContent-Length: 0\r\n\r\n",
            ),
            false,
        ),
        // Another SIP version.
        (
            head("SIP/7.0 180 Ringing", "Content-Length: 0\r\n\r\n"),
            false,
        ),
        // A 200 whose SDP is nonsense: the call is answered without media.
        (
            head(
                "SIP/2.0 200 OK",
                "Contact: <sip:b@127.0.0.1>\r\nContent-Type: application/sdp\r\nContent-Length: 11\r\n\r\nnot-an-sdp!",
            ),
            true,
        ),
    ];
    for (text, parses) in cases {
        let (mut ep, now, _) = endpoint_with_a_call();
        let r = ep.handle_bytes(now, text.as_bytes());
        assert_eq!(r.is_ok(), parses, "{text:?}: {r:?}");
        if !parses {
            // Refused: nothing sent, the call still waiting.
            assert!(ep.poll_transmit().is_none(), "{text:?}");
            assert_eq!(ep.live_calls(), 1, "{text:?}");
        }
    }
}
