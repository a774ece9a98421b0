//! The UA against a real SIPp provider: every outcome, auth, TCP, and the
//! faults (refused port). SIPp is started on a free loopback port per test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::sipp::{Sipp, UasOpts, provider};
use dialler::sip::auth::Credentials;
use dialler::sip::ua::{Ua, UaConfig};
use dialler::sip::uac::{CallEvent, CallParams, Outcome, Side, Summary};
use dialler::sip::{SipError, Target, Transport};

fn params(uri: &str) -> CallParams {
    common::sipp::call_params(uri)
}

async fn one_call(sipp: &Sipp, tcp: bool, p: impl FnOnce(&mut CallParams)) -> Summary {
    let target = Target::parse(&sipp.uri("+15551230001", tcp)).unwrap();
    let ua = Ua::start(UaConfig::new(target.addr, target.transport))
        .await
        .unwrap();
    let mut cp = params(&target.uri);
    p(&mut cp);
    let call = ua.call(cp).await.unwrap();
    let s = tokio::time::timeout(Duration::from_secs(40), call.ended())
        .await
        .unwrap_or_else(|_| panic!("call did not end; sipp errors:\n{}", sipp.errors()))
        .unwrap();
    ua.shutdown().await;
    s
}

async fn outcome_test(opts: UasOpts<'static>, want: Outcome, code: u16) {
    let Some(sipp) = Sipp::uas(opts).await else {
        return;
    };
    let s = one_call(&sipp, false, |_| {}).await;
    assert_eq!(s.outcome, want, "{s:?}\n{}", sipp.errors());
    assert_eq!(s.final_code, Some(code));
    assert!(s.codes.contains(&180), "{s:?}");
    sipp.stop().await;
}

#[tokio::test]
async fn busy_provider_gives_busy() {
    outcome_test(
        provider(1.0, 0.0, 0.0, 0.0, (50, 100), 1000),
        Outcome::Busy,
        486,
    )
    .await;
}

#[tokio::test]
async fn declining_provider_gives_rejected() {
    outcome_test(
        provider(0.0, 0.0, 1.0, 0.0, (50, 100), 1000),
        Outcome::Rejected,
        603,
    )
    .await;
}

#[tokio::test]
async fn provider_503_gives_unavailable() {
    outcome_test(
        provider(0.0, 0.0, 0.0, 1.0, (50, 100), 1000),
        Outcome::Unavailable,
        503,
    )
    .await;
}

#[tokio::test]
async fn answered_call_ends_when_the_callee_hangs_up() {
    let Some(sipp) = Sipp::uas(provider(0.0, 0.0, 0.0, 0.0, (200, 400), 300)).await else {
        return;
    };
    let s = one_call(&sipp, false, |_| {}).await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", sipp.errors());
    assert_eq!(s.hangup, Some(Side::Remote));
    let answer = s.answer_after.unwrap();
    assert!(answer >= Duration::from_millis(150), "rang {answer:?}");
    assert!(s.talk.is_some());
    sipp.stop().await;
}

#[tokio::test]
async fn answered_call_over_tcp_is_hung_up_by_us() {
    let mut opts = provider(0.0, 0.0, 0.0, 0.0, (50, 100), 600_000);
    opts.tcp = true;
    let Some(sipp) = Sipp::uas(opts).await else {
        return;
    };
    let s = one_call(&sipp, true, |p| {
        p.max_talk = Some(Duration::from_millis(500))
    })
    .await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", sipp.errors());
    assert_eq!(s.hangup, Some(Side::Local));
    let talk = s.talk.unwrap();
    assert!(
        talk >= Duration::from_millis(500) && talk < Duration::from_secs(5),
        "{talk:?}"
    );
    sipp.stop().await;
}

#[tokio::test]
async fn unanswered_call_is_cancelled_at_the_ring_timeout_and_ends_on_487() {
    let Some(sipp) = Sipp::uas(provider(0.0, 1.0, 0.0, 0.0, (50, 100), 1000)).await else {
        return;
    };
    let started = std::time::Instant::now();
    let s = one_call(&sipp, false, |_| {}).await;
    let took = started.elapsed();
    assert_eq!(s.outcome, Outcome::NoAnswer, "{s:?}\n{}", sipp.errors());
    assert_eq!(s.final_code, Some(487));
    assert!(!s.crossed_cancel);
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(20),
        "{took:?}"
    );
    sipp.stop().await;
}

#[tokio::test]
async fn digest_challenge_is_answered_and_the_call_connects() {
    let Some(sipp) = Sipp::uas(UasOpts::new("auth.xml")).await else {
        return;
    };
    let s = one_call(&sipp, false, |p| {
        p.credentials = Some(Credentials {
            username: "dialler".into(),
            password: "s3cret".into(),
        });
        p.max_talk = Some(Duration::from_millis(200));
    })
    .await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", sipp.errors());
    assert_eq!(s.codes, vec![401, 200]);
    sipp.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_by_the_provider() {
    let Some(sipp) = Sipp::uas(UasOpts::new("auth.xml")).await else {
        return;
    };
    let s = one_call(&sipp, false, |p| {
        p.credentials = Some(Credentials {
            username: "dialler".into(),
            password: "wrong".into(),
        });
    })
    .await;
    assert_eq!(s.outcome, Outcome::Rejected, "{s:?}");
    assert_eq!(s.codes, vec![401, 403]);
    sipp.stop().await;
}

#[tokio::test]
async fn agent_phone_answers_and_holds_until_our_bye() {
    let Some(sipp) = Sipp::uas(UasOpts::new("agent.xml")).await else {
        return;
    };
    let target = Target::parse(&sipp.uri("agent1", false)).unwrap();
    let ua = Ua::start(UaConfig::new(target.addr, target.transport))
        .await
        .unwrap();
    let mut call = ua.call(params(&target.uri)).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), call.next_event()).await {
            Ok(Some(CallEvent::Answered { media, .. })) => {
                assert!(media.is_some(), "agent SDP");
                break;
            }
            Ok(Some(CallEvent::Ended(s))) => panic!("ended before answer: {s:?}"),
            Ok(Some(_)) => {}
            other => panic!("no answer: {other:?}"),
        }
    }
    // Still up a second later: the agent holds.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), call.next_event())
            .await
            .is_err()
    );
    call.hangup();
    let s = call.ended().await.unwrap();
    assert_eq!(
        (s.outcome, s.hangup),
        (Outcome::Answered, Some(Side::Local))
    );
    ua.shutdown().await;
    sipp.stop().await;
}

#[tokio::test]
async fn udp_port_that_refuses_gives_unreachable_quickly() {
    let port = common::sipp::free_port();
    let target = Target::parse(&format!("sip:1@127.0.0.1:{port}")).unwrap();
    let ua = Ua::start(UaConfig::new(target.addr, Transport::Udp))
        .await
        .unwrap();
    let call = ua.call(params(&target.uri)).await.unwrap();
    let s = tokio::time::timeout(Duration::from_secs(5), call.ended())
        .await
        .expect("ICMP refusal, not timer B")
        .unwrap();
    assert_eq!(s.outcome, Outcome::Unreachable);
    ua.shutdown().await;
}

#[tokio::test]
async fn tcp_port_that_refuses_is_an_error_at_start() {
    let port = common::sipp::free_port();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    match Ua::start(UaConfig::new(addr, Transport::Tcp)).await {
        Err(SipError::Refused(a)) => assert_eq!(a, addr),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[tokio::test]
async fn prompt_played_to_an_answered_call_comes_back_from_the_echo() {
    let mut opts = provider(0.0, 0.0, 0.0, 0.0, (50, 100), 600_000);
    opts.rtp_echo = true;
    let Some(sipp) = Sipp::uas(opts).await else {
        return;
    };
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = Target::parse(&sipp.uri("+15551230002", false)).unwrap();
    let ua = Ua::start(UaConfig::new(target.addr, target.transport))
        .await
        .unwrap();
    let mut p = params(&target.uri);
    p.media_addr = rtp.local_addr().unwrap();
    let mut call = ua.call(p).await.unwrap();
    let media = loop {
        match tokio::time::timeout(Duration::from_secs(5), call.next_event()).await {
            Ok(Some(CallEvent::Answered { media, .. })) => break media.expect("SDP answer"),
            Ok(Some(CallEvent::Ended(s))) => panic!("ended: {s:?}"),
            Ok(Some(_)) => {}
            other => panic!("no answer: {other:?}"),
        }
    };
    assert_eq!(media.addr.port(), sipp.media_port);
    let codec = media.codec().expect("G.711 in the answer");
    let prompt = dialler::media::wav::generated_prompt(0.4);
    let played = dialler::media::player::play(&rtp, media.addr, &prompt, codec)
        .await
        .unwrap();
    assert_eq!(played.packets, 20);
    let mut buf = [0u8; 2048];
    let mut echoed = 0;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), rtp.recv(&mut buf)).await
    {
        let pk = dialler::media::rtp::Packet::parse(&buf[..n]).unwrap();
        assert_eq!(pk.payload_type, codec);
        echoed += 1;
    }
    assert_eq!(echoed, 20, "every packet echoed");
    call.hangup();
    assert_eq!(call.ended().await.unwrap().outcome, Outcome::Answered);
    ua.shutdown().await;
    sipp.stop().await;
}

/// A 302 naming the same number at another address (RFC 3261 8.1.3.4):
/// the new INVITE goes to that address, where the call is answered; the
/// redirecting provider sees only the first INVITE and its ACK.
#[tokio::test]
async fn a_redirect_to_the_same_number_elsewhere_is_followed_there() {
    let Some(callee) = Sipp::uas(UasOpts::new("answer_now.xml")).await else {
        return;
    };
    let Some(redirector) =
        Sipp::uas(UasOpts::new("redirect.xml").set("target_port", callee.addr.port())).await
    else {
        return;
    };
    let s = one_call(&redirector, false, |_| {}).await;
    assert_eq!(
        s.outcome,
        Outcome::Answered,
        "{s:?}\nredirector:\n{}\ncallee:\n{}",
        redirector.errors(),
        callee.errors()
    );
    assert!(s.codes.contains(&302), "{s:?}");
    assert_eq!(s.final_code, Some(200));
    redirector.stop().await;
    callee.stop().await;
}
