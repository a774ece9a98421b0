//! The browser softphone's media leg against a WebRTC peer on loopback
//! (str0m as the browser): ICE-lite, DTLS-SRTP and PCMU both ways (the
//! bridge's plain RTP reaching the browser, the browser's audio reaching
//! the agent leg as RTP), bad offers refused, a browser that never
//! connects given up, and hanging up ending the session.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::webrtc_peer::Peer;
use dialler::media::rtp::Packet;
use dialler::media::webrtc::{PhoneState, Softphone, SoftphoneError};
use tokio::net::UdpSocket;

fn ext() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind")
}

/// Sends `n` PCMU packets, 20 ms apart, from `from` to `to`.
async fn bridge_sends(from: &UdpSocket, to: std::net::SocketAddr, n: u16, seq0: u16) {
    bridge_sends_pt(from, to, n, seq0, 0).await
}

/// Sends `n` packets of payload type `pt`, 20 ms apart.
async fn bridge_sends_pt(from: &UdpSocket, to: std::net::SocketAddr, n: u16, seq0: u16, pt: u8) {
    for i in 0..n {
        let payload = [0x55u8; 160];
        let p = Packet {
            payload_type: pt,
            marker: i == 0,
            sequence: seq0.wrapping_add(i),
            timestamp: u32::from(seq0.wrapping_add(i)) * 160,
            ssrc: 0x1234,
            payload: &payload,
        };
        let mut out = Vec::new();
        p.write(&mut out);
        from.send_to(&out, to).await.expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn audio_flows_both_ways() {
    let peer = Peer::new().await;
    let mut phone = Softphone::accept(&peer.offer, ext(), None).expect("answered");
    assert!(phone.answer.contains("a=ice-lite"), "{}", phone.answer);
    assert!(phone.answer.contains("PCMU/8000"), "{}", phone.answer);
    assert!(
        phone.answer.contains("a=fingerprint:sha-256"),
        "{}",
        phone.answer
    );
    let browser = peer.run(&phone.answer);
    phone
        .connected(Duration::from_secs(10))
        .await
        .expect("the peer connects");
    let mut conn = browser.connected.clone();
    tokio::time::timeout(Duration::from_secs(5), conn.wait_for(|c| *c))
        .await
        .expect("peer connected in time")
        .expect("peer alive");

    browser.sending.store(true, Ordering::Relaxed);
    let mut buf = vec![0u8; 2048];

    // A call: the bridge (the agent leg's relay) sends the customer's
    // audio from the leg socket to the softphone's plain side.
    let leg = phone.leg.clone();
    let peer_addr = phone.peer;
    let sender = tokio::spawn(async move { bridge_sends(&leg, peer_addr, 50, 100).await });
    // The browser's audio comes back to the leg as RTP, PCMU.
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while got < 10 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), phone.leg.recv_from(&mut buf)).await
        {
            let p = Packet::parse(&buf[..n]).expect("RTP from the softphone");
            assert_eq!(p.payload_type, 0);
            assert_eq!(p.payload.len(), 160);
            got += 1;
        }
    }
    assert!(got >= 10, "only {got} browser packets reached the bridge");
    sender.await.expect("bridge sender");
    let frames = browser.seen.frames.load(Ordering::Relaxed);
    assert!(
        frames >= 40,
        "the browser received {frames} of the bridge's 50 frames"
    );
    let stats = *phone.stats.borrow();
    assert!(stats.first_packet_us.is_some(), "{stats:?}");

    // Hanging up ends the session on both sides.
    phone.hang_up();
    let mut state = phone.state.clone();
    tokio::time::timeout(
        Duration::from_secs(5),
        state.wait_for(|s| matches!(s, PhoneState::Ended(_))),
    )
    .await
    .expect("ended in time")
    .expect("state");
}

/// A customer on A-law, a browser sending μ-law: the customer's leg gets
/// A-law, the same sound.
#[tokio::test]
async fn the_browsers_audio_follows_the_customers_law() {
    let peer = Peer::new().await;
    let mut phone = Softphone::accept(&peer.offer, ext(), None).expect("answered");
    let browser = peer.run(&phone.answer);
    phone
        .connected(Duration::from_secs(10))
        .await
        .expect("connected");
    browser.sending.store(true, Ordering::Relaxed);
    let leg = phone.leg.clone();
    let to = phone.peer;
    let sender = tokio::spawn(async move { bridge_sends_pt(&leg, to, 40, 7, 8).await });
    let mut buf = vec![0u8; 2048];
    let mut checked = 0;
    // Until the bridge's first packet has reached the softphone, the
    // customer's law is unknown and the browser's own law is passed on;
    // from the first A-law packet on, every packet is A-law.
    let mut learned = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while checked < 5 && tokio::time::Instant::now() < deadline {
        let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(200), phone.leg.recv_from(&mut buf)).await
        else {
            continue;
        };
        let p = Packet::parse(&buf[..n]).expect("RTP");
        if !learned && p.payload_type == 0 {
            continue;
        }
        learned = true;
        assert_eq!(p.payload_type, 8, "the customer's law");
        // The peer's 400 Hz tone, decoded from A-law, is still a tone.
        let mut samples = Vec::new();
        dialler::media::g711::decode(8, p.payload, &mut samples).unwrap();
        let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((6000..=9000).contains(&peak), "peak {peak}");
        checked += 1;
    }
    assert_eq!(checked, 5, "the browser's audio did not reach the leg");
    sender.await.unwrap();
}

#[tokio::test]
async fn bad_offers_are_refused_with_the_reason() {
    let e = Softphone::accept("hello", ext(), None).expect_err("not SDP");
    assert!(matches!(e, SoftphoneError::Offer(_)), "{e}");
    // An offer with only Opus: nothing to bridge without transcoding.
    let opus_only = Peer::new().await.offer.replace("PCMU/8000", "opus/48000/2");
    let e = Softphone::accept(&opus_only, ext(), None).expect_err("no G.711");
    assert!(
        matches!(e, SoftphoneError::NoG711 | SoftphoneError::Offer(_)),
        "{e}"
    );
}

#[tokio::test]
async fn a_browser_that_never_connects_is_given_up() {
    tokio::time::pause();
    let peer = Peer::new().await;
    let mut phone = Softphone::accept(&peer.offer, ext(), None).expect("answered");
    // The peer never takes the answer.
    drop(peer);
    let r = phone.connected(Duration::from_secs(60)).await;
    assert!(r.is_err(), "{r:?}");
}

/// The API around the softphone: bad offers and logins are refused with
/// what is wrong, an agent token reaches only its own softphone, and a
/// login with `softphone: true` needs an answered offer first.
#[tokio::test]
async fn the_softphone_api_refuses_what_it_cannot_use() {
    use common::live;
    let at = live::tuesday();
    let l = live::load("uk-broadband", at, 2).await;
    let sb = live::Sandboxes::start(live::answering(Duration::from_secs(30), 3)).await;
    let svc = live::start(&l, sb.provider, at, "sp", Duration::from_secs(5)).await;
    let (a1, t1) = &l.agents[0];
    let (_, t2) = &l.agents[1];
    let path = format!("/api/agents/{a1}/softphone");

    let (code, v) = svc.req("POST", &path, t1, Some(r#"{"sdp":"hello"}"#)).await;
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["field"], "sdp", "{v}");
    let (code, v) = svc
        .req("POST", &path, t1, Some(r#"{"sdp":"v=0","x":1}"#))
        .await;
    assert_eq!(code, 422, "an unknown field: {v}");
    let offer = Peer::new().await.offer;
    let body = serde_json::json!({ "sdp": offer }).to_string();
    let (code, v) = svc.req("POST", &path, t2, Some(&body)).await;
    assert_eq!(code, 403, "another agent's token: {v}");
    let big = serde_json::json!({ "sdp": "a".repeat(13_000) }).to_string();
    let (code, _) = svc.req("POST", &path, t1, Some(&big)).await;
    assert_eq!(code, 400);

    let login = format!("/api/agents/{a1}/login");
    let (code, v) = svc
        .req(
            "POST",
            &login,
            t1,
            Some(r#"{"campaign":"uk-broadband","softphone":true}"#),
        )
        .await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/softphone"),
        "{v}"
    );
    let (code, v) = svc
        .req(
            "POST",
            &login,
            t1,
            Some(r#"{"campaign":"uk-broadband","softphone":true,"sip_uri":"sip:1@127.0.0.1"}"#),
        )
        .await;
    assert_eq!(code, 400, "{v}");

    // An answered offer whose browser never connects: the login waits
    // (20 s), then fails, and the agent is not left half logged in.
    let (code, v) = svc.req("POST", &path, t1, Some(&body)).await;
    assert_eq!(code, 200, "{v}");
    assert!(v["sdp"].as_str().unwrap().contains("a=ice-lite"));
    let (code, v) = svc
        .req(
            "POST",
            &login,
            t1,
            Some(r#"{"campaign":"uk-broadband","softphone":true}"#),
        )
        .await;
    assert_eq!(code, 502, "{v}");
    let (code, me) = svc.req("GET", "/api/me", t1, None).await;
    assert_eq!(code, 200);
    assert_eq!(me["agent"], serde_json::json!(a1));
    assert!(me["session"].is_null(), "{me}");
    svc.stop().await;
    sb.stop().await;
}

/// Behind NAT the browser reaches the host at another address: the answer
/// offers that address (with the socket's port), and media flows through
/// it. Here the socket listens on every address and 127.0.0.1 stands for
/// the public one.
#[tokio::test]
async fn the_advertised_address_is_the_candidate() {
    let peer = Peer::new().await;
    let any = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    let port = any.local_addr().unwrap().port();
    // Without an address to advertise, 0.0.0.0 is no candidate.
    let unspecified = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    assert!(matches!(
        Softphone::accept(&peer.offer, unspecified, None),
        Err(SoftphoneError::Address(_))
    ));
    let public = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut phone = Softphone::accept(&peer.offer, any, Some(public)).expect("answered");
    assert!(
        phone.answer.contains(&format!("127.0.0.1 {port} typ host")),
        "{}",
        phone.answer
    );
    let _browser = peer.run(&phone.answer);
    phone
        .connected(Duration::from_secs(10))
        .await
        .expect("connected through the advertised address");
}
