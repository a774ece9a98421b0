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

/// What the endpoint answers to `text`, fed as a datagram from the
/// provider: the status codes and the responses.
fn answers(ep: &mut Endpoint, now: Instant, text: &str) -> Vec<Response> {
    let _ = ep.handle_bytes(now, text.as_bytes());
    std::iter::from_fn(|| ep.poll_transmit())
        .filter_map(|b| match message::parse(&b, false) {
            Ok((Message::Response(r), _)) => Some(r),
            _ => None,
        })
        .collect()
}

/// RFC 4475's request-side torture cases that reach a UAC (a request
/// from the trunk, in a dialog or outside any), each with the answer
/// RFC 3261 and RFC 4475 name: 400 for a broken request, 505 for another
/// version, 501/405/416/420 for what we do not do, and a To tag on every
/// response to a request that had none (8.2.6.2).
#[test]
fn torture_requests_get_the_answers_rfc_4475_names() {
    let req = |start: &str, call_id: &str, cseq: &str, extra: &str| {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKtort{}\r\nFrom: <sip:trunk@10.0.0.9>;tag=t1\r\nTo: <sip:d@127.0.0.1:5070>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            cseq.len()
        )
    };
    let unknown = "torture@10.0.0.9";
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "clerr: Content-Length beyond the datagram",
            req(
                "INVITE sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 INVITE",
                "",
            )
            .replace("Content-Length: 0", "Content-Length: 9999"),
            400,
        ),
        (
            "badvers: SIP/7.0",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/7.0",
                unknown,
                "1 OPTIONS",
                "",
            ),
            505,
        ),
        (
            "lwsruri: whitespace inside the Request-URI",
            req(
                "INVITE sip:d@127.0.0.1:5070; lr SIP/2.0",
                unknown,
                "1 INVITE",
                "",
            ),
            400,
        ),
        (
            "lwsstart: whitespace before the Request-URI",
            req(
                "INVITE  sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 INVITE",
                "",
            ),
            400,
        ),
        (
            "ltgtruri: the Request-URI in angle brackets",
            req(
                "INVITE <sip:d@127.0.0.1:5070> SIP/2.0",
                unknown,
                "1 INVITE",
                "",
            ),
            400,
        ),
        (
            "mismatch01: CSeq names another method",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "8 INVITE",
                "",
            ),
            400,
        ),
        (
            "multi01: two Call-IDs",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 OPTIONS",
                "Call-ID: other@x\r\n",
            ),
            400,
        ),
        (
            "a bare LF inside a header value",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 OPTIONS",
                "Subject: a\nInjected: yes\r\n",
            ),
            400,
        ),
        (
            "badinv01: empty Via and Contact elements",
            req(
                "INVITE sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 INVITE",
                "Contact: \"Joe\" <sip:joe@10.0.0.9>;;;;\r\n",
            )
            .replace(";branch=z9hG4bKtort8\r\n", ";branch=z9hG4bKtort8;;,;,,\r\n"),
            400,
        ),
        (
            "quotbal: a display name whose quote never closes",
            req(
                "INVITE sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 INVITE",
                "",
            )
            .replace("To: <", "To: \"Mr. J. User <"),
            400,
        ),
        (
            "intmeth: an extension method of every token character",
            req(
                "!interesting-Method0123456789_*+`.%indeed'~ sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 !interesting-Method0123456789_*+`.%indeed'~",
                "",
            ),
            501,
        ),
        (
            "REGISTER to a UAC",
            req(
                "REGISTER sip:127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 REGISTER",
                "",
            ),
            405,
        ),
        (
            "unkscm: an unknown URI scheme",
            req(
                "OPTIONS nobody:d@127.0.0.1 SIP/2.0",
                unknown,
                "1 OPTIONS",
                "",
            ),
            416,
        ),
        (
            "bext01: a required extension we lack",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 OPTIONS",
                "Require: nothingSupportedHere\r\n",
            ),
            420,
        ),
        (
            "an OPTIONS probe",
            req(
                "OPTIONS sip:d@127.0.0.1:5070 SIP/2.0",
                unknown,
                "1 OPTIONS",
                "",
            ),
            200,
        ),
    ];
    // scalar02 (a signed CSeq) and a CSeq of 2**31 (8.1.1.5: less than
    // 2**31) get a 400 that echoes it (which is why it is read here as
    // bytes: our parser refuses that CSeq too).
    for cseq in ["+1 OPTIONS", "2147483648 OPTIONS"] {
        let (mut ep, now, _) = endpoint_with_a_call();
        let text = req("OPTIONS sip:d@127.0.0.1:5070 SIP/2.0", unknown, cseq, "");
        assert!(ep.handle_bytes(now, text.as_bytes()).is_err(), "{cseq}");
        let sent = ep.poll_transmit().expect("a 400");
        assert!(
            sent.starts_with(b"SIP/2.0 400 "),
            "{cseq}: {:?}",
            String::from_utf8_lossy(&sent)
        );
    }
    for (what, text, want) in cases {
        let (mut ep, now, _) = endpoint_with_a_call();
        let got = answers(&mut ep, now, &text);
        assert_eq!(
            got.iter().map(|r| r.code).collect::<Vec<_>>(),
            [want],
            "{what}: {text:?}"
        );
        let r = &got[0];
        assert!(
            r.headers.get("To").and_then(message::tag_of).is_some(),
            "{what}: a To tag on {}",
            r.code
        );
        assert!(r.headers.get("Injected").is_none(), "{what}");
        match want {
            420 => assert_eq!(r.headers.get("Unsupported"), Some("nothingSupportedHere")),
            501 | 405 | 200 => assert!(r.headers.get("Allow").is_some(), "{what}"),
            _ => {}
        }
        // Nothing touched the call placed.
        assert_eq!(ep.live_calls(), 1, "{what}");
        // The same request again gets the same To tag (a retransmission).
        if want != 400 && want != 505 {
            let again = answers(&mut ep, now, &text);
            assert_eq!(
                again[0].headers.get("To"),
                r.headers.get("To"),
                "{what}: a retransmission's tag"
            );
        }
    }
}

/// In a dialog: a BYE whose Call-ID starts on a folded line still finds
/// its call (the value has no leading space), and a BYE requiring an
/// extension we lack gets 420 and leaves the call up (RFC 3261 8.2.2.3).
#[test]
fn folded_and_extension_requests_in_a_dialog() {
    let (mut ep, now, inv) = answered_call();
    let call_id = inv.headers.get("Call-ID").unwrap();
    let from = inv.headers.get("From").unwrap();
    let bye = |cseq: u32, call_id_line: &str, extra: &str| {
        format!(
            "BYE sip:d@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye{cseq}\r\nFrom: <sip:callee@127.0.0.1>;tag=p\r\nTo: {from}\r\n{call_id_line}\r\nCSeq: {cseq} BYE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let got = answers(
        &mut ep,
        now,
        &bye(
            5,
            &format!("Call-ID: {call_id}"),
            "Require: nothingSupportedHere\r\n",
        ),
    );
    assert_eq!(got.iter().map(|r| r.code).collect::<Vec<_>>(), [420]);
    assert!(ep.poll_event().is_none(), "the call goes on");
    let got = answers(
        &mut ep,
        now,
        &bye(6, &format!("Call-ID:\r\n {call_id}"), ""),
    );
    assert_eq!(got.iter().map(|r| r.code).collect::<Vec<_>>(), [200]);
    assert!(
        std::iter::from_fn(|| ep.poll_event()).any(|(_, e)| matches!(e, CallEvent::Ended(_))),
        "the folded BYE ended the call"
    );
}

/// A 200 naming a session interval past any clock (RFC 4028 allows any
/// number of digits) is taken as a day, not a panic.
#[test]
fn a_huge_session_interval_is_capped_not_a_panic() {
    let (mut ep, now, inv) = endpoint_with_a_call();
    let mut ok = Response::to(&inv, 200, "OK", Some("p"));
    ok.headers.push("Contact", "<sip:callee@127.0.0.1:5060>");
    ok.headers
        .push("Session-Expires", "18446744073709551615;refresher=uac");
    ok.headers.push("Require", "timer");
    ep.handle_bytes(now, &ok.encode()).unwrap();
    while ep.poll_transmit().is_some() {}
    let next = ep.poll_timeout().expect("a refresh is due");
    assert!(next <= now + Duration::from_secs(43_200), "{next:?}");
    ep.handle_timeout(next);
    assert_eq!(ep.live_calls(), 1);
}
