//! The UA through Kamailio as a carrier edge (tests/kamailio/edge.cfg), in
//! front of SIPp UASes, located by DNS (dnsmasq): a call over TLS whose
//! certificate is checked against the name, with two Record-Route entries
//! (TLS in, UDP out) the in-dialog requests must follow in order; a forked
//! INVITE answered by both UASes (the second answer is ACKed and hung
//! up); registration with digest at the edge's registrar over TLS; and a
//! certificate for another name refused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::dns::Dnsmasq;
use common::kamailio::Kamailio;
use common::sipp::{Sipp, UasOpts, provider};
use dialler::sip::auth::Credentials;
use dialler::sip::register::{RegState, for_provider};
use dialler::sip::resolve::SipUri;
use dialler::sip::ua::Ua;
use dialler::sip::uac::{CallParams, Outcome, Side, Summary};
use dialler::sip::{SipNet, Transport};

struct Edge {
    kam: Kamailio,
    a: Sipp,
    b: Sipp,
    _dns: Dnsmasq,
    net: SipNet,
}

async fn edge(talk_ms: u32) -> Option<Edge> {
    edge_with(
        provider(0.0, 0.0, 0.0, 0.0, (50, 60), talk_ms),
        provider(0.0, 0.0, 0.0, 0.0, (50, 60), talk_ms),
    )
    .await
}

async fn edge_with(a: UasOpts<'static>, b: UasOpts<'static>) -> Option<Edge> {
    let a = Sipp::uas(a).await?;
    let b = Sipp::uas(b).await?;
    let kam = Kamailio::start(a.addr.port(), b.addr.port()).await?;
    let dns = Dnsmasq::start(&[
        format!(
            "--srv-host=_sips._tcp.carrier.test,edge.carrier.test,{},10,0",
            kam.tls.port()
        ),
        "--host-record=edge.carrier.test,127.0.0.1".to_string(),
        "--host-record=wrong.test,127.0.0.1".to_string(),
        format!(
            "--srv-host=_sips._tcp.wrong.test,wrong.test,{},10,0",
            kam.tls.port()
        ),
    ])
    .await?;
    let net = SipNet {
        dns_server: Some(dns.addr),
        tls_ca: Some(kam.ca.clone()),
        ..SipNet::default()
    };
    Some(Edge {
        kam,
        a,
        b,
        _dns: dns,
        net,
    })
}

fn params(uri: &str, max_talk: Option<Duration>) -> CallParams {
    CallParams {
        ids: None,
        max_talk,
        ..common::sipp::call_params(uri)
    }
}

async fn call(e: &Edge, user: &str, max_talk: Option<Duration>) -> Summary {
    let uri = SipUri::parse("sips:carrier.test").unwrap();
    let cfg = e.net.ua_config(&uri).await.unwrap();
    assert_eq!(cfg.transport, Transport::Tls);
    let ua = Ua::start(cfg).await.unwrap();
    let call = ua
        .call(params(&uri.request_uri(user), max_talk))
        .await
        .unwrap();
    let s = tokio::time::timeout(Duration::from_secs(30), call.ended())
        .await
        .unwrap_or_else(|_| panic!("the call ends\nA: {}\nB: {}", e.a.errors(), e.b.errors()))
        .unwrap();
    // Let a forked branch's BYE finish before the UA goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ua.shutdown().await;
    s
}

#[tokio::test]
async fn a_tls_call_through_the_edge_follows_its_route_set_both_ways() {
    let Some(e) = edge(400).await else { return };
    // The callee hangs up: its BYE reaches us through the edge over our
    // TLS connection.
    let s = call(&e, "+15551230001", None).await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", e.kam.log());
    assert_eq!(s.hangup, Some(Side::Remote));
    // We hang up: our BYE must carry the route set in order, or the edge
    // cannot loose-route it and the callee never hears it.
    let s = call(&e, "+15551230002", Some(Duration::from_millis(100))).await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", e.kam.log());
    assert_eq!(s.hangup, Some(Side::Local));
    assert!(
        s.talk.unwrap() < Duration::from_secs(5),
        "{s:?}: BYE answered"
    );
    assert!(!e.a.errors().contains("nexpected"), "{}", e.a.errors());
}

#[tokio::test]
async fn a_forked_call_answered_twice_keeps_one_and_hangs_up_the_other() {
    // Both callees answer at once, so the edge relays two 200s with
    // different tags; the kept one hangs up after a second.
    let Some(e) = edge_with(
        UasOpts::new("answer_now.xml"),
        UasOpts::new("answer_now.xml"),
    )
    .await
    else {
        return;
    };
    let s = call(&e, "fork+15551230003", None).await;
    assert_eq!(s.outcome, Outcome::Answered, "{s:?}\n{}", e.kam.log());
    assert_eq!(s.hangup, Some(Side::Remote), "{s:?}");
    // The other answer was ACKed and hung up: nobody is left on a dead
    // line, and neither callee saw anything it did not expect.
    assert_eq!(s.extra_answers, 1, "{s:?}");
    for sipp in [&e.a, &e.b] {
        assert!(!sipp.errors().contains("nexpected"), "{}", sipp.errors());
    }
}

#[tokio::test]
async fn registration_with_digest_at_the_edge_over_tls() {
    let Some(e) = edge(400).await else { return };
    let uri = SipUri::parse("sips:carrier.test").unwrap();
    let mut cfg = e.net.ua_config(&uri).await.unwrap();
    cfg.register = Some(
        for_provider(
            &uri,
            "trunk42",
            cfg.provider,
            Transport::Tls,
            600,
            Some(Credentials {
                username: "trunk42".into(),
                password: "s3cret".into(),
            }),
        )
        .unwrap(),
    );
    let ua = Ua::start(cfg).await.unwrap();
    let state = tokio::time::timeout(
        Duration::from_secs(10),
        ua.registration_until(|s| !matches!(s, RegState::Registering)),
    )
    .await
    .unwrap_or_else(|_| panic!("registered in time\n{}", e.kam.log()));
    assert_eq!(
        state,
        Some(RegState::Registered { granted: 600 }),
        "{}",
        e.kam.log()
    );
    // Shutdown takes the binding away (Expires: 0, its challenge
    // answered) and waits for the registrar to confirm it.
    let watch = ua.registration_watch().unwrap();
    ua.shutdown().await;
    assert_eq!(*watch.borrow(), RegState::Unregistered, "{}", e.kam.log());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let Some(e) = edge(400).await else { return };
    // wrong.test resolves to the same edge, whose certificate names
    // carrier.test only.
    let uri = SipUri::parse("sips:wrong.test").unwrap();
    let cfg = e.net.ua_config(&uri).await.unwrap();
    match Ua::start(cfg).await {
        Err(dialler::sip::SipError::Refused(_)) => {}
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("a certificate for carrier.test accepted for wrong.test"),
    }
}
