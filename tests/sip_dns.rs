//! Locating a provider by DNS (RFC 3263) against a real server (dnsmasq
//! on loopback), and failing over between its addresses with real SIPp
//! peers: SRV priority order, NAPTR transport choice, A fallback on the
//! default port, a refusing first target, a 503 from the first target.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dns::Dnsmasq;
use common::sipp::{Sipp, UasOpts, free_port, provider};
use dialler::sip::SipNet;
use dialler::sip::Transport;
use dialler::sip::resolve::{Resolver, SipUri};
use dialler::sip::ua::Ua;
use dialler::sip::uac::{CallParams, Outcome};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn params(uri: &str) -> CallParams {
    common::sipp::call_params(uri)
}

#[tokio::test]
async fn srv_records_give_addresses_in_priority_order_and_naptr_picks_the_transport() {
    let records = vec![
        "--srv-host=_sip._udp.trunk.test,edge2.trunk.test,5090,20,0".to_string(),
        "--srv-host=_sip._udp.trunk.test,edge1.trunk.test,5080,10,0".to_string(),
        "--host-record=edge1.trunk.test,127.0.0.11".to_string(),
        "--host-record=edge2.trunk.test,127.0.0.12".to_string(),
        // NAPTR says TCP first for naptr.test; its SRV points at edge1.
        "--naptr-record=naptr.test,10,20,s,SIP+D2U,,_sip._udp.naptr.test".to_string(),
        "--naptr-record=naptr.test,10,10,s,SIP+D2T,,_sip._tcp.naptr.test".to_string(),
        "--srv-host=_sip._tcp.naptr.test,edge1.trunk.test,5070,10,0".to_string(),
        "--srv-host=_sips._tcp.secure.test,edge2.trunk.test,5071,10,0".to_string(),
        "--host-record=plain.test,127.0.0.13".to_string(),
    ];
    let Some(dns) = Dnsmasq::start(&records).await else {
        return;
    };
    let r = Resolver::with_server(dns.addr).unwrap();
    let got = r
        .resolve(&SipUri::parse("sip:trunk.test").unwrap())
        .await
        .unwrap();
    assert_eq!(got.transport, Transport::Udp);
    assert_eq!(
        got.addrs,
        vec![
            "127.0.0.11:5080".parse::<SocketAddr>().unwrap(),
            "127.0.0.12:5090".parse().unwrap()
        ]
    );
    let got = r
        .resolve(&SipUri::parse("sip:naptr.test").unwrap())
        .await
        .unwrap();
    assert_eq!(got.transport, Transport::Tcp, "NAPTR preference 10 is TCP");
    assert_eq!(
        got.addrs,
        vec!["127.0.0.11:5070".parse::<SocketAddr>().unwrap()]
    );
    // No NAPTR: SRV for sips: gives TLS, and the name to check is the URI's.
    let got = r
        .resolve(&SipUri::parse("sips:secure.test").unwrap())
        .await
        .unwrap();
    assert_eq!(got.transport, Transport::Tls);
    assert_eq!(
        got.addrs,
        vec!["127.0.0.12:5071".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(got.server_name, "secure.test");
    // No NAPTR or SRV: A record, default port; an explicit port skips SRV.
    let got = r
        .resolve(&SipUri::parse("sip:plain.test").unwrap())
        .await
        .unwrap();
    assert_eq!(
        got.addrs,
        vec!["127.0.0.13:5060".parse::<SocketAddr>().unwrap()]
    );
    let got = r
        .resolve(&SipUri::parse("sip:trunk.test:6000;transport=tcp").unwrap())
        .await;
    assert!(got.is_err(), "trunk.test has no A record: {got:?}");
    let got = r
        .resolve(&SipUri::parse("sip:edge1.trunk.test:6000").unwrap())
        .await
        .unwrap();
    assert_eq!(
        got.addrs,
        vec!["127.0.0.11:6000".parse::<SocketAddr>().unwrap()]
    );
    // A name nobody knows is a clear error.
    let e = r
        .resolve(&SipUri::parse("sip:nowhere.test").unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nowhere.test"), "{e}");
}

/// Places a call to `user` at `uri`'s provider through `ua` and waits, at
/// most `limit`, for its end.
async fn call_to_its_end(
    ua: &Ua,
    uri: &SipUri,
    user: &str,
    limit: Duration,
) -> dialler::sip::uac::Summary {
    let call = ua.call(params(&uri.request_uri(user))).await.unwrap();
    tokio::time::timeout(limit, call.ended())
        .await
        .expect("the call ends")
        .unwrap()
}

/// A call to `sip:...@trunk.test` where the SRV record's first target is
/// `first` and the second a SIPp that answers.
async fn call_through_srv(first_port: u16, answering: &Sipp) -> Outcome {
    let records = vec![
        format!("--srv-host=_sip._udp.trunk.test,a.trunk.test,{first_port},10,0"),
        format!(
            "--srv-host=_sip._udp.trunk.test,b.trunk.test,{},20,0",
            answering.addr.port()
        ),
        "--host-record=a.trunk.test,127.0.0.1".to_string(),
        "--host-record=b.trunk.test,127.0.0.1".to_string(),
    ];
    let dns = Dnsmasq::start(&records).await.expect("dnsmasq");
    let net = SipNet {
        dns_server: Some(dns.addr),
        ..SipNet::default()
    };
    let uri = SipUri::parse("sip:trunk.test").unwrap();
    let cfg = net.ua_config(&uri).await.unwrap();
    assert_eq!(cfg.destinations.len(), 2);
    let ua = Ua::start(cfg).await.unwrap();
    let s = call_to_its_end(&ua, &uri, "+15551230001", Duration::from_secs(30)).await;
    ua.shutdown().await;
    s.outcome
}

#[tokio::test]
async fn a_refusing_first_target_fails_over_to_the_next() {
    if Dnsmasq::start(&[]).await.is_none() {
        return;
    }
    let Some(sipp) = Sipp::uas(provider(0.0, 0.0, 0.0, 0.0, (50, 100), 300)).await else {
        return;
    };
    // Nothing listens on the first target's port: ICMP port unreachable.
    let closed = free_port();
    let outcome = call_through_srv(closed, &sipp).await;
    assert_eq!(outcome, Outcome::Answered, "{}", sipp.errors());
    let _ = loopback(closed);
}

#[tokio::test]
async fn a_503_from_the_first_target_fails_over_to_the_next() {
    if Dnsmasq::start(&[]).await.is_none() {
        return;
    }
    let Some(overloaded) = Sipp::uas(provider(0.0, 0.0, 0.0, 1.0, (50, 100), 300)).await else {
        return;
    };
    let sipp = Sipp::uas(provider(0.0, 0.0, 0.0, 0.0, (50, 100), 300))
        .await
        .expect("sipp");
    let outcome = call_through_srv(overloaded.addr.port(), &sipp).await;
    assert_eq!(outcome, Outcome::Answered, "{}", sipp.errors());
    let _ = UasOpts::new("provider.xml");
}

/// Waits for an INVITE on `sock` (at most 5 s).
async fn invite_at(sock: &tokio::net::UdpSocket) -> bool {
    let mut buf = vec![0u8; 65_535];
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(end, sock.recv_from(&mut buf)).await {
        if buf[..n].starts_with(b"INVITE ") {
            return true;
        }
    }
    false
}

/// An answer holds only for its TTL: when the provider's name moves to
/// another address (dnsmasq re-reads its hosts file), the UA's new calls
/// go there once the old answer has run out; with the DNS server gone the
/// addresses it had are kept; the refresher ends with its UA.
#[tokio::test]
async fn a_provider_is_looked_up_again_when_its_answer_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.21 trunk.test\n").unwrap();
    let Some(mut dns) = Dnsmasq::start(&[
        format!("--addn-hosts={}", hosts.display()),
        "--local-ttl=1".to_string(),
    ])
    .await
    else {
        return;
    };
    // Two edges of the trunk on one port, at two loopback addresses.
    let port = free_port();
    let (a, b) = (
        SocketAddr::from(([127, 0, 0, 21], port)),
        SocketAddr::from(([127, 0, 0, 22], port)),
    );
    let edge_a = tokio::net::UdpSocket::bind(a).await.unwrap();
    let edge_b = tokio::net::UdpSocket::bind(b).await.unwrap();
    let net = SipNet {
        dns_server: Some(dns.addr),
        relookup_floor: Duration::from_millis(200),
        ..SipNet::default()
    };
    let uri = SipUri::parse(&format!("sip:trunk.test:{port}")).unwrap();
    let (cfg, found) = net.locate(&uri).await.unwrap();
    assert_eq!(found.addrs, vec![a]);
    let ttl = found
        .ttl
        .expect("a looked-up answer says how long it holds");
    assert!(ttl <= Duration::from_secs(1), "{ttl:?}");
    let ua = std::sync::Arc::new(Ua::start(cfg).await.unwrap());
    let refresher = tokio::spawn(dialler::sip::ua::keep_resolved(
        std::sync::Arc::downgrade(&ua),
        Resolver::new(Some(dns.addr)).unwrap(),
        uri.clone(),
        Transport::Udp,
        ttl,
        net.relookup_floor,
    ));
    let _first = ua
        .call(params(&uri.request_uri("+15551230001")))
        .await
        .unwrap();
    assert!(
        invite_at(&edge_a).await,
        "the first call goes to the first edge"
    );
    // The name moves.
    std::fs::write(&hosts, "127.0.0.22 trunk.test\n").unwrap();
    dns.reload();
    assert!(
        common::live::until(Duration::from_secs(10), || async {
            ua.destinations() == vec![b]
        })
        .await,
        "the UA still dials {:?}",
        ua.destinations()
    );
    let _second = ua
        .call(params(&uri.request_uri("+15551230002")))
        .await
        .unwrap();
    assert!(invite_at(&edge_b).await, "a new call goes to the new edge");
    // DNS gone: the addresses there are stay.
    dns.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ua.destinations(), vec![b]);
    match std::sync::Arc::try_unwrap(ua) {
        Ok(ua) => {
            ua.shutdown().await;
        }
        Err(_) => panic!("the refresher holds no strong reference for long"),
    }
    tokio::time::timeout(Duration::from_secs(5), refresher)
        .await
        .expect("the refresher ends with its UA")
        .unwrap();
}

/// The live service (as `dialler run` starts it) on a campaign whose
/// provider is a name with SRV records, and an agent whose provisioned
/// phone is a name too: both are found through DNS, and a call through
/// the trunk is put through to the agent.
#[tokio::test]
async fn the_service_finds_its_trunk_and_an_agent_phone_by_name() {
    if Dnsmasq::start(&[]).await.is_none() {
        return;
    }
    let l = common::live::load("uk-broadband", common::live::tuesday(), 1).await;
    let sb =
        common::live::Sandboxes::start(common::live::answering(Duration::from_secs(600), 3)).await;
    let dns = Dnsmasq::start(&[
        format!(
            "--srv-host=_sip._udp.trunk.test,edge.trunk.test,{},10,0",
            sb.provider.port()
        ),
        "--host-record=edge.trunk.test,127.0.0.1".to_string(),
        format!(
            "--srv-host=_sip._udp.desk.test,phone.desk.test,{},10,0",
            sb.phones.port()
        ),
        "--host-record=phone.desk.test,127.0.0.1".to_string(),
    ])
    .await
    .expect("dnsmasq");
    let mut campaign = l.campaign.clone();
    campaign.provider.uri = "sip:trunk.test".into();
    let live = common::live::start_configured(
        &l.store,
        &campaign,
        &l.dir.path().join("dnd"),
        common::live::tuesday(),
        |cfg| cfg.net.dns_server = Some(dns.addr),
    )
    .await;
    let (id, tok) = &l.agents[0];
    // A name nothing answers for is refused at login, not at provisioning.
    let nowhere = format!("sip:{id}@nowhere.test");
    live.provision(&l.supervisor, id, &nowhere).await;
    let (c, v) = live.login(id, tok, &nowhere).await;
    assert_eq!(c, 502, "{v}");
    let why = v["error"]["message"].as_str().unwrap_or_default();
    assert!(why.contains("DNS") && why.contains("nowhere.test"), "{v}");
    let phone = format!("sip:{id}@desk.test");
    live.provision(&l.supervisor, id, &phone).await;
    let (c, v) = live.login(id, tok, &phone).await;
    assert_eq!(c, 200, "{v}");
    assert!(
        live.ready_until_call(id, tok, Duration::from_secs(30))
            .await,
        "no call put through the trunk found by name"
    );
    live.stop().await;
    let stats = sb.stop().await;
    assert!(stats.answered >= 1, "{stats:?}");
}

/// Two SRV targets of one priority, weights 3:1, each a sandbox provider
/// that answers busy: every call draws its own order (RFC 2782 selects
/// per request), so calls spread over both targets by weight rather than
/// all going to the one drawn at the lookup.
#[tokio::test]
async fn calls_spread_over_equal_priority_srv_targets_by_weight() {
    use dialler::sip::sandbox::{self, SandboxConfig, Weights};
    let busy = || SandboxConfig {
        weights: Weights {
            answer: 0.0,
            busy: 1.0,
            no_answer: 0.0,
            reject: 0.0,
            unavailable: 0.0,
        },
        ring: (Duration::from_millis(5), Duration::from_millis(10)),
        ..SandboxConfig::default()
    };
    let (stop, _) = tokio::sync::broadcast::channel(2);
    let (heavy, heavy_task) = sandbox::spawn_loopback(busy(), stop.subscribe())
        .await
        .unwrap();
    let (light, light_task) = sandbox::spawn_loopback(busy(), stop.subscribe())
        .await
        .unwrap();
    let records = vec![
        format!(
            "--srv-host=_sip._udp.spread.test,heavy.spread.test,{},10,75",
            heavy.port()
        ),
        format!(
            "--srv-host=_sip._udp.spread.test,light.spread.test,{},10,25",
            light.port()
        ),
        "--host-record=heavy.spread.test,127.0.0.1".to_string(),
        "--host-record=light.spread.test,127.0.0.1".to_string(),
    ];
    let Some(dns) = Dnsmasq::start(&records).await else {
        return;
    };
    let net = SipNet {
        dns_server: Some(dns.addr),
        ..SipNet::default()
    };
    let uri = SipUri::parse("sip:spread.test").unwrap();
    let ua = Ua::start(net.ua_config(&uri).await.unwrap()).await.unwrap();
    let calls = 80;
    for i in 0..calls {
        let number = format!("+1555123{i:04}");
        let s = call_to_its_end(&ua, &uri, &number, Duration::from_secs(10)).await;
        assert_eq!(s.outcome, Outcome::Busy, "{s:?}");
    }
    ua.shutdown().await;
    let _ = stop.send(());
    let heavy = heavy_task.await.unwrap().unwrap().invites;
    let light = light_task.await.unwrap().unwrap().invites;
    assert_eq!(heavy + light, calls, "one INVITE per call");
    // 3:1 of 80: 60 expected on the heavy target, 3.9 standard deviations
    // either side (binomial, sd 3.9), and never all on one.
    assert!((45..=75).contains(&heavy), "heavy {heavy}, light {light}");
}
