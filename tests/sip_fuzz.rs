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
