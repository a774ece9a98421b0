//! Registration against a real registrar (SIPp with digest auth): the
//! challenge is answered, the granted expiry read, a wrong password ends
//! in a failure that is retried later, and the state shows in /metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::sipp::{Sipp, UasOpts};
use dialler::sip::Transport;
use dialler::sip::auth::Credentials;
use dialler::sip::register::{RegState, for_provider};
use dialler::sip::resolve::SipUri;
use dialler::sip::ua::{Ua, UaConfig};

async fn register(sipp: &Sipp, password: &str) -> (Ua, Option<RegState>) {
    let uri = SipUri::parse(&format!("sip:{}", sipp.addr)).unwrap();
    let mut cfg = UaConfig::new(sipp.addr, Transport::Udp);
    cfg.register = Some(
        for_provider(
            &uri,
            "trunk42",
            sipp.addr,
            Transport::Udp,
            600,
            Some(Credentials {
                username: "trunk42".into(),
                password: password.into(),
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
    .expect("the registrar answers");
    (ua, state)
}

#[tokio::test]
async fn the_digest_challenge_is_answered_and_the_granted_expiry_kept() {
    let Some(sipp) = Sipp::uas(UasOpts::new("registrar.xml")).await else {
        return;
    };
    let (ua, state) = register(&sipp, "s3cret").await;
    assert_eq!(
        state,
        Some(RegState::Registered { granted: 120 }),
        "{}",
        sipp.errors()
    );
    let text = dialler::metrics::render(&Default::default()).unwrap();
    let line = format!("dialler_sip_registered{{registrar=\"{}\"}} 1", sipp.addr);
    assert!(text.contains(&line), "{line} in:\n{text}");
    ua.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_failure_retried_later() {
    let Some(sipp) = Sipp::uas(UasOpts::new("registrar.xml")).await else {
        return;
    };
    let (ua, state) = register(&sipp, "wrong").await;
    assert_eq!(
        state,
        Some(RegState::Failed {
            code: 403,
            failures: 1
        })
    );
    ua.shutdown().await;
}
