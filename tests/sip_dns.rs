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
    let call = ua
        .call(params(&uri.request_uri("+15551230001")))
        .await
        .unwrap();
    let s = tokio::time::timeout(Duration::from_secs(30), call.ended())
        .await
        .expect("the call ends")
        .unwrap();
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
